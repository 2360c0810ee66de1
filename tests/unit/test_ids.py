"""Session and message ids (delivery/ids.py): unique within a process, and between
processes forked from one parent (workers.py forks its workers after importing)."""

from __future__ import annotations

import os

from mailwright.delivery import ids


def test_ids_within_a_process_are_unique_and_time_ordered():
    sessions = {ids.session_id() for _ in range(1000)}
    assert len(sessions) == 1000
    assert ids.session_id("I").startswith(ids.process_tag() + "I")
    first, second = ids.message_id(1000.0), ids.message_id(1000.5)
    assert first != second and first < second


def test_a_forked_child_draws_its_own_tag():
    parent = ids.process_tag()
    tags = set()
    for _ in range(4):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # the child: report and leave
            os.write(write, ids.process_tag().encode())
            os._exit(0)
        os.close(write)
        tags.add(os.read(read, 16).decode())
        os.close(read)
        os.waitpid(pid, 0)
    assert ids.process_tag() == parent
    # 4 draws of 16 bits each: all the same as the parent's by chance is impossible in
    # practice; one collision among them is merely unlikely, so ask only for change.
    assert tags - {parent}
