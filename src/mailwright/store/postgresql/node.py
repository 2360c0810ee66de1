"""This node's id: a name for what it holds in the shared database (queue claims).

Made once per install (data_dir/node-id: the host's name and a random part) and kept
across restarts, so a restarted node knows its own previous claims from the other
nodes'. Each node has its own data_dir; a copied node-id file makes two nodes one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE = "node-id"


def node_id(data_dir: Path) -> str:
    path = data_dir / FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    made = f"{os.uname().nodename}/{secrets.token_hex(6)}"
    draft = path.with_name(f"{FILE}.{os.getpid()}")
    draft.write_text(made + "\n")
    try:
        # link(2) fails if the name exists: worker processes starting together agree
        # on the first one written, and none reads a half-written file.
        os.link(draft, path)
    except FileExistsError:
        made = path.read_text().strip()
    finally:
        draft.unlink()
    return made
