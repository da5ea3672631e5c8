"""What every test run needs, whatever started it.

Ctrl-C (SIGINT) keeps its default meaning in the test process and in every child it starts. A shell
script that starts a command in the background (`... &`) starts it with SIGINT ignored; an ignored signal
is inherited across fork and exec, and Python then leaves it ignored. Under `make test` started that
way, every test that checks how corral's CLI ends on Ctrl-C (logs -f, events, a Ctrl-C while it loads)
waited for nothing. A handler (unlike SIG_IGN) is reset to the default in children at exec."""

import signal

signal.signal(signal.SIGINT, signal.default_int_handler)
