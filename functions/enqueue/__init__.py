"""enqueue: checks a try-on request, records its job and sends it on to tailor or weave."""
