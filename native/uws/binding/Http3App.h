// Kiln builds uWS.js without QUIC: the HTTP/3 types exist only as names for type checks.
#pragma once
namespace uWS {
struct Http3Request;
struct Http3Response;
struct H3App;
}  // namespace uWS
