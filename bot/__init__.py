"""OneWord's Telegram front end (python-telegram-bot v22).

The bot talks to people and to the storage, never to the engine: it validates requests,
downloads photos into the data directory, queues jobs (:mod:`oneword.jobs` payloads) and
delivers what the worker leaves behind. Start it with :func:`bot.app.run`.
"""
