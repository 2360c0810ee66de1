"""Running Mailwright as a system service: dropping root after the listeners are bound
(privileges.py), the pid file `mailwright reload` signals (pidfile.py) and log output
for journald or a terminal (logs.py). The entry points (cli.py, workers.py, app.py)
call these; sd_notify is net/notify.py, certificates net/certs.py."""
