from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from . import receivers, schema  # noqa: F401  (schema registers the OpenAPI bearer scheme)

        receivers.connect()

        from videoplatform.cache import prefetch

        from .authentication import prefetch_wants

        prefetch.register(prefetch_wants)
