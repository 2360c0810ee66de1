"""The peer for bench/smtp_accept: aiosmtpd with a handler that writes each message
to its own file and fsyncs it before answering 250, as a durable MTA must — in the
default thread pool, so that no session waits on another's fsync (what a competent
Python author would write; issue 20 found the earlier peer fsyncing on its loop)."""

import asyncio
import os
import sys
import uuid

from aiosmtpd.controller import Controller


class FsyncHandler:
    def __init__(self, directory: str):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        await asyncio.to_thread(self._write, envelope.original_content)
        return "250 OK"

    def _write(self, content: bytes) -> None:
        path = os.path.join(self.directory, uuid.uuid4().hex)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)


def main() -> None:
    host, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(FsyncHandler(directory), hostname=host, port=port,
                            data_size_limit=50 * 1024 * 1024)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
