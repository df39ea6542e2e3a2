from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "streaming.live"
    label = "live"
    verbose_name = "Live streaming"

    def ready(self) -> None:
        from videoplatform.metrics import SCRAPE_TIME_REGISTRY

        from .metrics import LiveCollector

        SCRAPE_TIME_REGISTRY.register(LiveCollector())  # type: ignore[arg-type]
