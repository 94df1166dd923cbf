"""``i2i serve``: the local web UI."""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors


@click.command(context_settings=CONTEXT)
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port (0: any free port; the address is printed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address lets other machines use it.")
@click.option("--root", "roots", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="A folder whose model files (.safetensors, .pth, .pt, .ckpt) the page offers and whose "
              "images/videos it may read by path; repeat for several. Nothing outside them is read.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available).")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Largest upload (all files of one job together).")
@user_errors
def serve(port: int, host: str, roots: tuple[Path, ...], open_browser: bool, device: str, max_upload_mb: int) -> None:
    """A local web UI: drop images or a video, pick a model, compare before/after, download.

    Runs on the same engine as `i2i upscale` and `i2i video`: bundled models (x4), the pretrained
    catalogue (`i2i models --pretrained`, downloaded on first use) and model files under --root.
    One job runs at a time; uploads and results live in a temporary folder that is removed when
    the server stops, so download what you want to keep. Needs the [serve] extra.

    \b
    Examples:
      i2i serve                                  # http://127.0.0.1:8765/ with the bundled x4 model
      i2i serve --open --root ~/models           # also offer the model files under ~/models
      i2i serve --port 0 --device cuda:1         # any free port, the second GPU
      pip install 'i2i-toolkit[serve]'                   # starlette, uvicorn and python-multipart
    """
    from i2i.serve.server import require_dependencies

    require_dependencies()
    from i2i.serve.app import create_app
    from i2i.serve.models import check_roots
    from i2i.serve.server import bind, is_loopback, page_url, serve_forever

    checked = check_roots(roots)
    sock = bind(host, port)
    loopback = is_loopback(host)
    if not loopback:
        click.echo(f"Warning: listening on {host}: anyone who can reach this machine can run models here"
                   + (" and read the files under --root" if checked else "") + ".", err=True)
    url = page_url(sock)
    app = create_app(checked, device=device, max_upload_mb=max_upload_mb, loopback_only=loopback)
    click.echo(f"i2i web UI: {url}  (Ctrl+C to stop)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        serve_forever(app, sock)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its clean shutdown
        pass
    click.echo("Stopped; the uploads and results it held are removed.")
