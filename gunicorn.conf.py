"""gunicorn settings read from the working directory.

Its access and error logs go through the application's token redaction; each
worker runs Keyward's serving checks as it boots (and refuses to serve on an
error); a worker writes its gathered usage as it exits.
"""

wsgi_app = "config.wsgi:application"
logger_class = "config.serving.RedactingLogger"


def post_worker_init(worker):
    """Run the serving checks, knowing the sockets this worker listens on."""
    from config.serving import check_worker

    check_worker(worker)


def worker_exit(server, worker):
    """Flush the usage counts and failed-key tallies this worker still holds."""
    from apikeys.usage import flush_all

    flush_all()
