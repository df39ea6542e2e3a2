from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions"

    def ready(self) -> None:
        # settings.prod turns this on: the gateway class can only be imported once the apps are
        # loaded, so the refusal that settings.prod starts (on the setting's value) ends here.
        if getattr(settings, "SUBSCRIPTIONS_PAYMENT_GATEWAY_REQUIRED", False):
            from .billing import gateway_refusal

            reason = gateway_refusal()
            if reason is not None:
                raise ImproperlyConfigured(f"settings.prod refuses to start: {reason}")

        from . import receivers

        receivers.connect()
