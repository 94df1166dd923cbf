"""``i2i serve``: a local web UI on the same engine as the command line.

One static page (``static/``: HTML, JavaScript and CSS, no build step, nothing from the network)
talks to a small Starlette app (:mod:`i2i.serve.app`) served by uvicorn (:mod:`i2i.serve.server`).
Models are offered and checked by :mod:`i2i.serve.models`; the work runs one job at a time in a
worker thread (:mod:`i2i.serve.jobs`) through :func:`i2i.load` and the video translator.

Starlette, uvicorn and python-multipart are the ``[serve]`` extra; importing this package needs
none of them (the submodules do).
"""
