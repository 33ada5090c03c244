#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Where a request came from, for what is limited per client (the desk's
/// login throttle).
///
/// The connection's peer is the client, unless the server is configured to
/// trust the proxy in front of it (`--desk-trust-proxy`). Then the client is
/// the last address of `X-Forwarded-For`: the one the shipped nginx
/// configuration appends (`$proxy_add_x_forwarded_for`); the addresses
/// before it are whatever the client sent and are not believed. IPv6
/// addresses count by their /64, which one household or phone usually has
/// whole.
public enum ClientAddress {
    /// The peer address of the connection of the request being answered,
    /// set by ``PeerAddressResponder``; nil where no responder set it.
    @TaskLocal public static var peer: String?

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// The client's address as the throttle counts it; "unknown" when
    /// neither the proxy's header nor the connection tells.
    static func of(_ request: Request, trustProxy: Bool) -> String {
        if trustProxy, let last = request.headers[values: forwardedFor].last?.split(separator: ",").last,
           let address = normalized(last.trimmingCharacters(in: .whitespaces)) {
            return address
        }
        return peer.flatMap(normalized) ?? "unknown"
    }

    /// Whether the request carries `X-Forwarded-For` (a proxy in front).
    static func isForwarded(_ request: Request) -> Bool { request.headers[forwardedFor] != nil }

    /// An IPv4 address as itself; an IPv6 address as its /64 (an IPv4
    /// address mapped into IPv6 as the IPv4 address); nil for anything else.
    static func normalized(_ text: String) -> String? {
        guard text.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return bytes.map(String.init).joined(separator: ".")
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return bytes[12...].map(String.init).joined(separator: ".")
        }
        let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }
}

/// Answers with a router, noting each request's peer address in
/// ``ClientAddress/peer`` first: the router's own context does not carry it.
public struct PeerAddressResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == BasicRequestContext {
    public struct Context: InitializableFromSource {
        let channel: any Channel
        let logger: Logger

        public init(source: ApplicationRequestContextSource) {
            channel = source.channel
            logger = source.logger
        }

        var source: ApplicationRequestContextSource { ApplicationRequestContextSource(channel: channel, logger: logger) }
    }

    let inner: Inner

    public init(_ inner: Inner) { self.inner = inner }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let peer = context.channel.remoteAddress?.ipAddress
        return try await ClientAddress.$peer.withValue(peer) {
            try await inner.respond(to: request, context: BasicRequestContext(source: context.source))
        }
    }
}
