"""An HTTP/2 server for tests/grpc.rs, on the `h2` library (python-hyper): a gRPC health answer
in the shape of a real server's, or one way of ending a call badly. It prints its port, then
one JSON line per request with the request's headers (pseudo-headers included), as received.

  h2_peer.py MODE [--tls CERT KEY]     (with --tls: no ALPN is offered)
  MODE: serving | goaway | reset | ping | big-headers | compressed
"""

import json
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events

mode = sys.argv[1]
tls = sys.argv[2:5] if len(sys.argv) > 2 and sys.argv[2] == "--tls" else None

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)

SERVING = b"\x00\x00\x00\x00\x02\x08\x01"


def answer(conn, stream):
    headers = [(":status", "200"), ("content-type", "application/grpc")]
    if mode == "big-headers":
        # Larger than one frame: sent as HEADERS and CONTINUATION.
        headers.append(("x-padding", "p" * 40000))
    conn.send_headers(stream, headers)
    if mode == "compressed":
        conn.send_data(stream, b"\x01" + SERVING[1:])
        conn.send_headers(stream, [("grpc-status", "0"), ("grpc-encoding", "gzip")], end_stream=True)
    else:
        conn.send_data(stream, SERVING)
        conn.send_headers(stream, [("grpc-status", "0"), ("grpc-message", "all%20good")], end_stream=True)


def serve(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    pending = None
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                seen = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                        for k, v in event.headers}
                print(json.dumps(seen), flush=True)
                stream = event.stream_id
                if mode == "goaway":
                    conn.close_connection(error_code=11, additional_data=b"too_many_pings", last_stream_id=0)
                elif mode == "reset":
                    conn.reset_stream(stream, error_code=7)
                elif mode == "ping":
                    conn.ping(b"12345678")
                    pending = stream
                else:
                    answer(conn, stream)
            elif isinstance(event, h2.events.PingAckReceived) and pending:
                answer(conn, pending)
                pending = None
        sock.sendall(conn.data_to_send())


while True:
    sock, _ = listener.accept()
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[1], tls[2])
        try:
            sock = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            continue
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
