from django.apps import AppConfig


class VideosConfig(AppConfig):
    name = "videos"
    verbose_name = "Videos"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()

        from videoplatform.cache import prefetch

        from .selectors import prefetch_wants

        prefetch.register(prefetch_wants)
