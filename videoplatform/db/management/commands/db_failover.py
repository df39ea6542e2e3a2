"""``manage.py db_failover status|promote``: see videoplatform/db/failover.py and docs/operations.md."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from videoplatform.db.aliases import direct_alias
from videoplatform.db.failover import PromotionRefused, configured_hosts, inspect, parse_address, promote


class Command(BaseCommand):
    help = (
        "Primary failover of self-run PostgreSQL: 'status' shows each server's role, timeline and "
        "standbys; 'promote HOST:PORT' promotes that standby (refused while another server is still "
        "a primary). The servers are those of DATABASE_DIRECT_URL (else DATABASE_URL), or --host."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "promote"])
        parser.add_argument("target", nargs="?", help="promote: the standby to promote, HOST:PORT")
        parser.add_argument(
            "--host",
            action="append",
            default=[],
            help="a server HOST:PORT (repeat); default: the configured ones",
        )
        parser.add_argument("--database", default="", help="the alias whose servers and user to use")
        parser.add_argument("--force", action="store_true", help="promote though another primary answers")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"] or direct_alias()
        credentials = settings.DATABASES[alias]
        hosts = [parse_address(item) for item in options["host"]] or configured_hosts(alias)
        if options["action"] == "status":
            servers = [inspect(host, port, credentials) for host, port in hosts]
            for server in servers:
                self.stdout.write(server.describe())
            primaries = [server.address for server in servers if server.role == "primary"]
            if len(primaries) > 1:
                listed = ", ".join(primaries)
                raise CommandError(f"more than one primary answers: {listed} (fence all but one)")
            if not primaries:
                raise CommandError("no primary answers: promote a standby (db_failover promote HOST:PORT)")
            return
        if not options["target"]:
            raise CommandError("promote needs the standby to promote: HOST:PORT")
        target = parse_address(options["target"])
        others = [host for host in hosts if host != target]
        try:
            server = promote(target, others, credentials, force=options["force"])
        except PromotionRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(server.describe())
        self.stdout.write(
            self.style.SUCCESS(f"{server.address} is the primary.")
            + " Fence the old primary before it can start again: rewind it into a standby "
            "(scripts/pg-failover.sh rejoin) or keep it down. Apps with a multi-host DATABASE_URL "
            "follow by themselves; re-point a PgBouncer in front (scripts/pg-failover.sh repoint)."
        )
