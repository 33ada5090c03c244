import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy on loopback that can cut connections mid-transfer: the
/// flaky network of a basement or a kiosk's night link, for tests.
///
/// Every connection is forwarded to `upstream`. While `cutAfterBytes` is
/// set, a connection is closed (both ways, with no goodbye) once that many
/// bytes of answer have gone through it; `cuts` counts how often.
public final class CuttingProxy: @unchecked Sendable {
    public let port: Int
    let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var cutAfter: Int?
    private var cutCount = 0
    private var connectionCount = 0
    private var closed = false

    public init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        (listener, port) = try Self.listenOnLoopback()
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Cut each connection after this many bytes of answer; nil to stop
    /// cutting.
    public var cutAfterBytes: Int? {
        get { lock.withLock { cutAfter } }
        set { lock.withLock { cutAfter = newValue } }
    }

    /// How many connections were cut so far.
    public var cuts: Int { lock.withLock { cutCount } }
    /// How many connections were accepted so far.
    public var connections: Int { lock.withLock { connectionCount } }

    public func close() {
        lock.withLock { closed = true }
        shutdown(listener, Int32(SHUT_RDWR))
        _ = Glibc.close(listener)
    }

    deinit { close() }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = Glibc.close(fd) }
        var address = loopback(port: UInt16(port))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// A listening socket on 127.0.0.1 and the port the system chose.
    public static func listenOnLoopback() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            _ = Glibc.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if lock.withLock({ closed }) { return }
                continue
            }
            lock.withLock { connectionCount += 1 }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: UInt16(upstreamPort))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected != 0 {
                _ = Glibc.close(client)
                _ = Glibc.close(upstream)
                continue
            }
            let limit = lock.withLock { cutAfter }
            let pair = Pair(client: client, upstream: upstream)
            Thread { [self] in pump(from: client, to: upstream, pair: pair, limit: nil) }.start()
            Thread { [self] in pump(from: upstream, to: client, pair: pair, limit: limit) }.start()
        }
    }

    /// Both ends of one proxied connection, closed once.
    final class Pair: @unchecked Sendable {
        let client: Int32
        let upstream: Int32
        private let lock = NSLock()
        private var done = false
        init(client: Int32, upstream: Int32) {
            self.client = client
            self.upstream = upstream
        }
        func closeBoth() {
            let first = lock.withLock { () -> Bool in
                defer { done = true }
                return !done
            }
            guard first else { return }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
            _ = Glibc.close(client)
            _ = Glibc.close(upstream)
        }
    }

    private func pump(from source: Int32, to destination: Int32, pair: Pair, limit: Int?) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var forwarded = 0
        while true {
            let count = read(source, &buffer, buffer.count)
            if count <= 0 { break }
            var chunk = count
            var cut = false
            if let limit, forwarded + count >= limit {
                chunk = max(0, limit - forwarded)
                cut = true
            }
            var offset = 0
            while offset < chunk {
                let written = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + offset, chunk - offset) }
                if written <= 0 { break }
                offset += written
            }
            forwarded += chunk
            if cut {
                lock.withLock { cutCount += 1 }
                break
            }
        }
        pair.closeBoth()
    }
}

extension CuttingProxy {
    /// Sends `bytes` to 127.0.0.1:`port` on a fresh connection, leaves it
    /// open, and returns what the server answers within `seconds` (nil
    /// when nothing came): how a test sees whether the server answers a
    /// request before its body has arrived.
    public static func answerBeforeTheRest(port: Int, sending bytes: Data, seconds: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var address = loopback(port: UInt16(port))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { return nil }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let received = recv(fd, &buffer, buffer.count, 0)
            guard received > 0 else { break }
            answer += buffer[0..<received]
            // What follows the first bytes comes at once, or not at all.
            var short = timeval(tv_sec: 0, tv_usec: 300_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &short, socklen_t(MemoryLayout<timeval>.size))
        }
        return answer.isEmpty ? nil : String(decoding: answer, as: UTF8.self)
    }

    /// Sends `head`, then one byte of filler every `interval` seconds (none
    /// when `interval` is nil), until the server answers or closes the
    /// connection or `seconds` pass. Returns what the server sent and how
    /// many seconds after the head the connection ended (nil: still open).
    /// For the server's read and idle timeouts.
    public static func trickle(port: Int, head: Data, interval: Double?, seconds: Double) -> (answer: String, closedAfter: Double?) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return ("", nil) }
        defer { _ = Glibc.close(fd) }
        var address = loopback(port: UInt16(port))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return ("", nil) }
        if !head.isEmpty {
            guard head.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == head.count else { return ("", 0) }
        }
        let start = Date()
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var nextByte = interval.map { start.addingTimeInterval($0) }
        while Date().timeIntervalSince(start) < seconds {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 100) > 0 {
                let received = recv(fd, &buffer, buffer.count, 0)
                if received <= 0 { return (String(decoding: answer, as: UTF8.self), Date().timeIntervalSince(start)) }
                answer += buffer[0..<received]
                continue
            }
            if let due = nextByte, Date() >= due, let interval {
                var filler: UInt8 = 0x41
                if send(fd, &filler, 1, Int32(MSG_NOSIGNAL)) != 1 { return (String(decoding: answer, as: UTF8.self), Date().timeIntervalSince(start)) }
                nextByte = due.addingTimeInterval(interval)
            }
        }
        return (String(decoding: answer, as: UTF8.self), nil)
    }
}
