"""Launch the newsrag web UI and HTTP API on one server (default http://127.0.0.1:7860).

    python app.py [--index DIR] [--host 127.0.0.1] [--port 7860] [--auth user:pass] [--token T]

The same as `newsrag serve`. With no index of your own yet it serves the bundled sample
archive read-only (the page says so); `--index indexes/news` starts your own.
"""
import sys

from newsrag.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
