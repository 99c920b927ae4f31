from cellbench.cli import app

app()
