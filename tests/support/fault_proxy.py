#!/usr/bin/env python3
"""An HTTP/1.1 forwarding proxy that injects the faults registries show in
production, for integration tests (protocols.md 1.3, 1.9):

  --cut-request-after N   after forwarding N bytes of a request body (method
                          --cut-method, "" = any), drop both connections
                          (a "connection reset" mid-PATCH); --cut-times times,
                          after letting --cut-skip such requests through
  --cut-response-after N  drop the connection after N bytes of a response body
  --fail-first K          answer the first K requests with --fail-status
                          (+ Retry-After: --retry-after when > 0) and a JSON
                          error body, without forwarding them
  --buffer-requests       read a whole request body before forwarding it (like
                          nginx): a cut or a client killed mid-body never
                          reaches the upstream
  --flip-byte-at N        flip one byte at offset N of the first GET /blobs/ body
  --path-filter S         only requests whose path contains S are faulted
  --drop-response-method M  forward the first --drop-response-times requests with
                          method M whole, let the upstream answer, then drop the
                          client's connection without relaying the answer (a
                          "connection reset" after the registry acted: the final PUT)
  --stall-request-after N  with --buffer-requests: after reading N bytes of a
                          request body (method --cut-method, after --stall-skip such
                          requests), stop reading it and never forward it: the
                          client hangs mid-PATCH with nothing of it at the registry
                          (a moment to kill it at); logged as "stalled …"
  --throttle-rate R        forward the body of the first --throttle-times requests
                          with method --cut-method at R bytes/s (a slow link);
                          logs "throttled … passed N bytes" once N >= 1 MiB went on
  --stall-stop-reading     at the stall, stop reading the request altogether (a dead
                          link: the client's bytes stay unacknowledged) instead of
                          reading and dropping the rest (a proxy that took the body
                          and never answers)
  --recv-buffer N          the receive buffer (SO_RCVBUF) of client connections:
                          with --stall-stop-reading, what the client can still hand
                          to the kernel is bounded by N instead of loopback's tens of MiB
  --traffic-log F         one line per request: METHOD PATH BYTES STATUS, BYTES
                          the request body bytes forwarded to the upstream and
                          STATUS its answer ("cut"/"dropped" when faulted)

The Host header is forwarded unchanged, so the registry's absolute Location
headers point back at the proxy. Every injected fault is appended as one line
to --fault-log. GET /__proxy_health answers 200 locally.
"""
import argparse
import http.client
import http.server
import socket
import sys
import threading
import time

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade"}


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.cuts_left = args.cut_times if args.cut_request_after > 0 else 0
        self.skip_left = args.cut_skip
        self.response_cuts_left = args.cut_times if args.cut_response_after > 0 else 0
        self.fails_left = args.fail_first
        self.flip_left = 1 if args.flip_byte_at >= 0 else 0
        self.drop_left = args.drop_response_times if args.drop_response_method else 0
        self.stall_skip_left = args.stall_skip
        self.stalls_left = 1 if args.stall_request_after > 0 else 0
        self.throttles_left = args.throttle_times if args.throttle_rate > 0 else 0

    def log(self, line):
        with self.lock:
            with open(self.args.fault_log, "a") as f:
                f.write(line + "\n")

    def traffic(self, method, path, sent, status):
        if not self.args.traffic_log:
            return
        with self.lock:
            with open(self.args.traffic_log, "a") as f:
                f.write(f"{method} {path.split('?')[0]} {sent} {status}\n")

    def take(self, attr):
        with self.lock:
            n = getattr(self, attr)
            if n > 0:
                setattr(self, attr, n - 1)
                return True
            return False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def matches(self):
        f = self.server.state.args.path_filter
        return not f or f in self.path

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def read_body_pieces(self):
        """Yields the request body in pieces (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0") or 0)
        while length > 0:
            piece = self.rfile.read(min(length, 1 << 16))
            if not piece:
                return
            length -= len(piece)
            yield piece

    def handle_any(self):
        st = self.server.state
        a = st.args
        if self.path == "/__proxy_health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        faulted = self.matches()
        if faulted and st.take("fails_left"):
            for _ in self.read_body_pieces():
                pass
            body = (b'{"errors":[{"code":"%s","message":"injected by fault proxy"}]}' %
                    (b"TOOMANYREQUESTS" if a.fail_status == 429 else b"UNAVAILABLE"))
            self.send_response(a.fail_status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if a.retry_after > 0:
                self.send_header("Retry-After", str(a.retry_after))
            self.end_headers()
            self.wfile.write(body)
            st.log(f"fail {a.fail_status} {self.command} {self.path.split('?')[0]}")
            return
        has_body = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        cut_req = (faulted and a.cut_request_after > 0 and has_body and
                   (not a.cut_method or a.cut_method == self.command))
        if cut_req and st.take("skip_left"):
            cut_req = False
        pieces = self.read_body_pieces() if has_body else iter(())
        stall = (faulted and a.stall_request_after > 0 and has_body and
                 (not a.cut_method or a.cut_method == self.command) and st.stalls_left > 0)
        if stall and st.take("stall_skip_left"):
            stall = False
        if a.buffer_requests and has_body:
            # Like nginx's proxy_request_buffering: the upstream sees a request
            # only once its whole body has arrived.
            buffered, total = [], 0
            for piece in pieces:
                if stall and total + len(piece) >= a.stall_request_after and \
                        st.take("stalls_left"):
                    st.log(f"stalled {self.command} {self.path.split('?')[0]} after "
                           f"{a.stall_request_after} request bytes")
                    st.traffic(self.command, self.path, 0, "stalled")
                    if a.stall_stop_reading:
                        threading.Event().wait()  # until the proxy stops
                    while True:  # until the client goes away or the proxy stops
                        if not self.rfile.read(1 << 16):
                            return self.drop()
                if cut_req and total + len(piece) >= a.cut_request_after and \
                        st.take("cuts_left"):
                    st.log(f"cut {self.command} {self.path.split('?')[0]} after "
                           f"{a.cut_request_after} request bytes (buffered, not forwarded)")
                    st.traffic(self.command, self.path, 0, "cut")
                    return self.drop()
                buffered.append(piece)
                total += len(piece)
            expected = self.headers.get("Content-Length")
            if expected is not None and total < int(expected):
                st.log(f"incomplete {self.command} {self.path.split('?')[0]} not forwarded")
                st.traffic(self.command, self.path, 0, "incomplete")
                return self.drop()
            pieces, cut_req = iter(buffered), False
        throttle = (faulted and has_body and st.throttles_left > 0 and
                    (not a.cut_method or a.cut_method == self.command) and
                    st.take("throttles_left"))
        if throttle:
            pieces = self.throttled(pieces, a.throttle_rate)
        up = http.client.HTTPConnection(a.upstream, timeout=120)
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP:
                continue
            up.putheader(k, v)
        if chunked:
            up.putheader("Transfer-Encoding", "chunked")
        up.endheaders()
        sent = 0
        if has_body:
            for piece in pieces:
                if cut_req and sent + len(piece) >= a.cut_request_after and st.take("cuts_left"):
                    keep = a.cut_request_after - sent
                    self.send_piece(up, piece[:keep], chunked)
                    st.log(f"cut {self.command} {self.path.split('?')[0]} after "
                           f"{a.cut_request_after} request bytes")
                    st.traffic(self.command, self.path, sent + keep, "cut")
                    up.sock.shutdown(socket.SHUT_RDWR)
                    up.close()
                    self.drop()
                    return
                self.send_piece(up, piece, chunked)
                sent += len(piece)
            if chunked:
                up.send(b"0\r\n\r\n")
        resp = up.getresponse()
        if (faulted and a.drop_response_method == self.command and st.take("drop_left")):
            resp.read()
            up.close()
            st.log(f"dropped the response to {self.command} {self.path.split('?')[0]} "
                   f"({resp.status})")
            st.traffic(self.command, self.path, sent, "dropped")
            return self.drop()
        st.traffic(self.command, self.path, sent, resp.status)
        self.relay_response(resp, faulted)
        up.close()

    def throttled(self, pieces, rate):
        """Yields the pieces in 64 KiB slices at `rate` bytes/s."""
        st = self.server.state
        start, passed, logged = time.monotonic(), 0, False
        for piece in pieces:
            for i in range(0, len(piece), 1 << 16):
                part = piece[i:i + (1 << 16)]
                yield part
                passed += len(part)
                if not logged and passed >= 1 << 20:
                    logged = True
                    st.log(f"throttled {self.command} {self.path.split('?')[0]} passed "
                           f"{passed} bytes")
                delay = start + passed / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    @staticmethod
    def send_piece(up, piece, chunked):
        if not piece:
            return
        if chunked:
            up.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            up.send(piece)

    def relay_response(self, resp, faulted):
        st = self.server.state
        a = st.args
        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP:
                continue
            self.send_header(k, v)
        use_chunked = length is None and self.command != "HEAD" and resp.status not in (204, 304)
        if use_chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        flip = (faulted and self.command == "GET" and "/blobs/" in self.path and
                resp.status in (200, 206) and st.flip_left > 0 and st.take("flip_left"))
        cut = (faulted and a.cut_response_after > 0 and self.command == "GET" and
               resp.status in (200, 206) and st.take("response_cuts_left"))
        pos = 0
        while True:
            piece = resp.read(1 << 16)
            if not piece:
                break
            if flip and pos <= a.flip_byte_at < pos + len(piece):
                i = a.flip_byte_at - pos
                piece = piece[:i] + bytes([piece[i] ^ 0x01]) + piece[i + 1:]
                st.log(f"flip byte {a.flip_byte_at} of {self.path.split('?')[0]}")
            if cut and pos + len(piece) >= a.cut_response_after:
                piece = piece[:a.cut_response_after - pos]
                self.write_piece(piece, use_chunked)
                st.log(f"cut response {self.path.split('?')[0]} after "
                       f"{a.cut_response_after} bytes")
                self.wfile.flush()
                self.drop()
                return
            self.write_piece(piece, use_chunked)
            pos += len(piece)
        if use_chunked:
            self.wfile.write(b"0\r\n\r\n")

    def write_piece(self, piece, chunked):
        if not piece:
            return
        if chunked:
            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            self.wfile.write(piece)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="HOST:PORT (plain HTTP)")
    p.add_argument("--cut-request-after", type=int, default=0)
    p.add_argument("--cut-method", default="PATCH")
    p.add_argument("--cut-times", type=int, default=1)
    p.add_argument("--cut-skip", type=int, default=0)
    p.add_argument("--buffer-requests", action="store_true")
    p.add_argument("--cut-response-after", type=int, default=0)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--retry-after", type=int, default=0)
    p.add_argument("--flip-byte-at", type=int, default=-1)
    p.add_argument("--path-filter", default="")
    p.add_argument("--fault-log", default="/dev/null")
    p.add_argument("--drop-response-method", default="")
    p.add_argument("--drop-response-times", type=int, default=1)
    p.add_argument("--traffic-log", default="")
    p.add_argument("--stall-request-after", type=int, default=0)
    p.add_argument("--stall-skip", type=int, default=0)
    p.add_argument("--throttle-rate", type=int, default=0)
    p.add_argument("--throttle-times", type=int, default=1)
    p.add_argument("--recv-buffer", type=int, default=0)
    p.add_argument("--stall-stop-reading", action="store_true")
    args = p.parse_args()

    class Server(http.server.ThreadingHTTPServer):
        def server_bind(self):
            # Set before listen(): accepted sockets inherit it, and the TCP
            # window is sized from it at the handshake.
            if args.recv_buffer > 0:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.recv_buffer)
            super().server_bind()

    server = Server(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    print(f"fault proxy on 127.0.0.1:{args.port} -> {args.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
