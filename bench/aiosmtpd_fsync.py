"""The peer for bench/smtp_accept: aiosmtpd with a handler that writes each message
to its own file and fsyncs it before answering 250, as a durable MTA must."""

import asyncio
import os
import sys
import uuid

from aiosmtpd.controller import Controller


class FsyncHandler:
    def __init__(self, directory: str):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(self.directory, uuid.uuid4().hex)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, envelope.original_content)
            os.fsync(fd)
        finally:
            os.close(fd)
        return "250 OK"


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
