from yolossl.cli import app

app()
