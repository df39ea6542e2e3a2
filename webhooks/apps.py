from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Endpoints, events and deliveries: the platform's events sent to API consumers."""

    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from videoplatform import events
        from videoplatform.metrics import SCRAPE_TIME_REGISTRY

        from . import metrics, services

        events.subscribe(services.event_record)
        metrics.register(SCRAPE_TIME_REGISTRY)
