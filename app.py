"""Launches the newsrag web UI.

The Gradio UI is not built yet; until it is, this says so and points at the
command line, which serves the same archive.
"""
import sys

if __name__ == "__main__":
    print("newsrag: the web UI is not built yet; use the `newsrag` command "
          "(newsrag ingest / search / ask / brief / stats / delete / demo).", file=sys.stderr)
    sys.exit(2)
