"""The bot's health and metrics server (oneword.health), when ``health_port`` is set.

Ready means: the database answers and the bot is taking updates. The job counts it serves
are the database's, so the bot alone reports the whole queue.
"""

from __future__ import annotations

from telegram.ext import Application

from oneword.health import HealthPortError, HealthServer
from oneword.metrics import ServiceMetrics
from storage.stats import QueueStats

from .services import get_services
from .startup import StartupError

HEALTH_KEY = "oneword.health"


async def start_health(application: Application) -> None:
    """Serve /livez, /readyz and /metrics on the configured port (nothing when it is 0)."""
    services = get_services(application)
    settings = services.settings
    if not settings.health_port:
        return
    server = HealthServer(settings.health_listen, settings.health_port,
                          QueueStats.of(services.store), ServiceMetrics("bot"),
                          extra_checks={"updates": lambda: application.running})
    try:
        await server.start()
    except HealthPortError as exc:  # one line and exit code 1, as other start-up failures
        raise StartupError(str(exc)) from None
    application.bot_data[HEALTH_KEY] = server


async def stop_health(application: Application) -> None:
    """Stop the health server, if one runs."""
    server = application.bot_data.pop(HEALTH_KEY, None)
    if server is not None:
        await server.stop()
