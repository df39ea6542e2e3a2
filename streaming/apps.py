from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    verbose_name = "Streaming"

    def ready(self) -> None:
        from celery.signals import celeryd_after_setup

        from . import media, media_tools

        media.connect()

        from videoplatform.cache import prefetch

        from .selectors import prefetch_wants

        prefetch.register(prefetch_wants)
        # A worker without ffmpeg/ffprobe leaves transcoding jobs to one that has them.
        celeryd_after_setup.connect(media_tools.on_worker_setup, weak=False)
