"""The `bench` command's entry point: SIGTERM handled from the first instant (one line, exit status 143) while the
command-line interface is still being imported; each command then installs its own handling (`bench.cli`)."""
import os
import signal
import sys


def _terminated_before_the_command(signum, frame):
    os.write(2, b"error: terminated (SIGTERM) while starting; nothing was written\n")
    os._exit(143)


def main():
    signal.signal(signal.SIGTERM, _terminated_before_the_command)
    # a caller that had SIGINT or SIGTERM blocked passes its mask on through exec: a SIGTERM would wait unseen
    # while the command ran to its end (exit status 0) instead of stopping it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    from bench.compat import torch_pair_problem
    problem = torch_pair_problem()
    if problem:  # before anything imports torchvision (its failure is a traceback deep in an import)
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    from bench.cli import main as cli
    cli()
