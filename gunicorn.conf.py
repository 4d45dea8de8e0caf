"""gunicorn settings read from the working directory: write gathered usage as a worker exits."""

wsgi_app = "config.wsgi:application"


def worker_exit(server, worker):
    """Flush the usage counts and failed-key tallies this worker still holds."""
    from apikeys.usage import flush_all

    flush_all()
