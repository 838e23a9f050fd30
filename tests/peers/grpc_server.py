"""A gRPC server for tests/grpc.rs: grpcio with grpcio-health-checking's HealthServicer.

Statuses: "" SERVING, "down" NOT_SERVING, "unset" UNKNOWN; any other service is unknown to it
(NOT_FOUND). With --list it also answers the health service's List method (grpcio's servicer
leaves it UNIMPLEMENTED); "token" is SERVING only to a call whose metadata carries
`authorization: Bearer <--token>`. Prints its port (0 for a unix socket) once it listens, and
stops when its stdin closes.

  server.py [--host 127.0.0.1|::1] [--unix PATH] [--tls CERT KEY] [--client-ca CA]
            [--no-health] [--list] [--token T]
"""

import argparse
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--unix")
parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
parser.add_argument("--client-ca")
parser.add_argument("--no-health", action="store_true")
parser.add_argument("--list", action="store_true")
parser.add_argument("--token")
args = parser.parse_args()


class Health(health.HealthServicer):
    def Check(self, request, context):
        if request.service == "token":
            metadata = dict(context.invocation_metadata())
            ok = metadata.get("authorization") == f"Bearer {args.token}"
            S = health_pb2.HealthCheckResponse
            return S(status=S.SERVING if ok else S.NOT_SERVING)
        return super().Check(request, context)

    def List(self, request, context):
        if not args.list:
            return super().List(request, context)
        with self._lock:
            statuses = {
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._server_status.items()
            }
        return health_pb2.HealthListResponse(statuses=statuses)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
if not args.no_health:
    servicer = Health()
    S = health_pb2.HealthCheckResponse
    servicer.set("down", S.NOT_SERVING)
    servicer.set("unset", S.UNKNOWN)
    if args.token:
        servicer.set("token", S.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

if args.unix:
    address = f"unix:{args.unix}"
else:
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"{host}:0"
if args.tls:
    cert, key = (open(p, "rb").read() for p in args.tls)
    ca = open(args.client_ca, "rb").read() if args.client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )
    port = server.add_secure_port(address, credentials)
else:
    port = server.add_insecure_port(address)
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(0)
