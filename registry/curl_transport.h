// The libcurl Transport: the only place mc-engine touches sockets.
//
// One worker thread owns a curl multi handle (connection reuse, HTTP/2 where
// the server offers it over TLS). Send() queues the request, blocks until the
// final response headers arrive, and returns the body as a Reader fed through
// a bounded buffer: when the caller stops reading, the transfer is paused, so
// a multi-GiB blob never sits in memory.
//
// Policy implemented here (see curl_transport.cc for the why):
// - connect timeout, stall timeout (no byte for N s), never a total timeout;
// - TLS verified unless options.tls.verify is false; extra CAs and a client
//   certificate from tls.cert_dir or /etc/containers/certs.d/HOST[:PORT]/;
// - plain http:// only when verification is off or the host is loopback
//   (kInvalidInput otherwise);
// - redirects (301/302/303/307/308) followed here, at most 10 hops; on a host
//   change Authorization and other auth headers are dropped (Range is kept)
//   and a redirect to an internal address on another host is refused;
//   a streamed request body cannot be resent, so a 307/308 answer to it is
//   returned to the caller;
// - HTTP statuses are never errors here; connection failures are kTransient,
//   TLS verification failures kNetwork, bad URLs kInvalidInput.
//
// Thread guarantee: the Transport is safe for concurrent use; each returned
// body Reader is used by one thread at a time and may outlive the Transport.
#pragma once

#include <memory>

#include "registry/transport.h"

namespace mc::registry {

std::shared_ptr<Transport> NewCurlTransport(const TransportOptions& options);

}  // namespace mc::registry
