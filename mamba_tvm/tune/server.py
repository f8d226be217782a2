"""`python -m mamba_tvm.tune.server --tracker HOST:PORT [--key cortex-m7]`: a measuring server.

A TVM RPC server (tvm.rpc.Server) registered with the tracker under the core's key, with one
extra function, mamba_tvm.tune.run_profile: it runs an uploaded profiling firmware on this
machine's QEMU and returns the per-call counts and logits as JSON. Start one per QEMU worker
(per core of each machine of a farm); `python -m mamba_tvm.tune --tracker HOST:PORT` then
sends its candidates through the tracker. A board on a serial port is measured with
`python -m mamba_tvm.profile --port` instead (cycles, not instructions).
The tracker itself is TVM's: `python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190`.
"""
from __future__ import annotations

import time

from ..errors import MambaTVMError, argument_parser, exit_with, run_cli


def register(port: int = 0) -> None:
    """The server's init callback: make run_profile callable over RPC (runs in the server process)."""
    import json
    import socket

    import numpy as np
    import tvm_ffi

    from mamba_tvm.tune.measure import REMOTE_RUN, profile_elf

    @tvm_ffi.register_global_func(REMOTE_RUN, override=True)
    def run_profile(elf_name: str, input_name: str, shape_json: str) -> str:
        path = tvm_ffi.get_global_func("tvm.rpc.server.workpath")
        x = np.fromfile(path(input_name), dtype=np.float32).reshape(json.loads(shape_json))
        from tvm.rpc.server import PopenRPCServerState

        state = PopenRPCServerState.current
        where = f"{socket.gethostname()}:{state.port if state is not None else port}"
        return json.dumps({**profile_elf(path(elf_name), x), "served_by": where})


def start(tracker: str, key: str, host: str = "127.0.0.1", port: int = 9090):
    """A tvm.rpc.Server serving run_profile, registered with the tracker (caller terminates it)."""
    from tvm import rpc

    thost, tport = parse_addr(tracker)
    import functools

    return rpc.Server(host, port=port, port_end=port + 100, tracker_addr=(thost, tport), key=key,
                      server_init_callback=functools.partial(register, port), silent=True)


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MambaTVMError(f"--tracker wants HOST:PORT, got '{text}'")
    return host, int(port)


def main(argv=None) -> int:
    def body():
        p = argument_parser(prog="python -m mamba_tvm.tune.server", description=__doc__.splitlines()[0])
        p.add_argument("--tracker", required=True, help="HOST:PORT of a TVM RPC tracker")
        p.add_argument("--key", default="cortex-m7", help="the core this server measures (cortex-m7, xtensa-lx7)")
        p.add_argument("--host", default="127.0.0.1", help="address to listen on")
        p.add_argument("--port", type=int, default=9090, help="first port to try")
        args = p.parse_args(argv)
        server = start(args.tracker, args.key, args.host, args.port)
        print(f"serving {args.key} on {args.host}:{server.port} via tracker {args.tracker}", flush=True)
        try:
            while True:
                time.sleep(3600)
        finally:
            server.terminate()

    return run_cli(body)


if __name__ == "__main__":
    exit_with(main())
