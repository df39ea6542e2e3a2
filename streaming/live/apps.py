from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "streaming.live"
    label = "live"
    verbose_name = "Live streaming"
