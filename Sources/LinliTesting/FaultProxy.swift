import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on loopback that damages the exchange, one fault per
/// connection chosen by a seeded generator: the misconfigured proxy, the
/// middlebox, the half-dead link a sync engine must survive without
/// losing anything (docs/RELIABILITY.md).
///
/// For each connection it picks one of: pass; flip one byte of the
/// request (headers or body) or of the answer (compressed or not, small
/// answers included); cut the connection after some bytes of answer; delay
/// the answer; or send the request twice, a copy first on another
/// connection. ``counts`` says how often each was chosen.
public final class FaultProxy: @unchecked Sendable {
    public enum Fault: String, CaseIterable, Sendable {
        case pass, flipRequest = "flip_request", flipAnswer = "flip_answer", cut, delay, duplicate
    }

    public let port: Int
    public let seed: UInt64
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var random: SeededRandom
    private var chosen: [Fault: Int] = [:]
    private var closed = false
    /// While false, every connection passes untouched.
    private var faulty = true

    public init(upstreamPort: Int, seed: UInt64) throws {
        self.upstreamPort = upstreamPort
        self.seed = seed
        random = SeededRandom(seed: seed)
        (listener, port) = try CuttingProxy.listenOnLoopback()
        Thread { [self] in acceptLoop() }.start()
    }

    /// How often each fault was chosen so far.
    public var counts: [Fault: Int] { lock.withLock { chosen } }

    /// Turns the faults on or off (off: a plain proxy).
    public var isFaulty: Bool {
        get { lock.withLock { faulty } }
        set { lock.withLock { faulty = newValue } }
    }

    public func close() {
        lock.withLock { closed = true }
        shutdown(listener, Int32(SHUT_RDWR))
        _ = Glibc.close(listener)
    }

    deinit { close() }

    struct Plan {
        var fault: Fault
        /// The byte to flip (request or answer), or where to cut.
        var offset: Int
        var bit: UInt8
        var delayMilliseconds: Int
    }

    private func plan() -> Plan {
        lock.withLock {
            guard faulty else { return Plan(fault: .pass, offset: 0, bit: 0, delayMilliseconds: 0) }
            let roll = Int.random(in: 0..<100, using: &random)
            let fault: Fault = switch roll {
            case 0..<40: .pass
            case 40..<52: .flipRequest
            case 52..<70: .flipAnswer
            case 70..<80: .cut
            case 80..<90: .delay
            default: .duplicate
            }
            chosen[fault, default: 0] += 1
            // Offsets reach the request line and headers, and the start of
            // bodies (small answers are a few hundred bytes in all).
            return Plan(fault: fault, offset: Int.random(in: 0..<1_200, using: &random), bit: UInt8(1) << UInt8.random(in: 0..<8, using: &random),
                        delayMilliseconds: Int.random(in: 50..<400, using: &random))
        }
    }

    private func connectUpstream() -> Int32? {
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = CuttingProxy.loopback(port: UInt16(upstreamPort))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 {
            _ = Glibc.close(upstream)
            return nil
        }
        return upstream
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if lock.withLock({ closed }) { return }
                continue
            }
            guard let upstream = connectUpstream() else {
                _ = Glibc.close(client)
                continue
            }
            let plan = plan()
            let pair = CuttingProxy.Pair(client: client, upstream: upstream)
            Thread { [self] in pumpRequest(from: client, to: upstream, pair: pair, plan: plan) }.start()
            Thread { [self] in pumpAnswer(from: upstream, to: client, pair: pair, plan: plan) }.start()
        }
    }

    private func pumpRequest(from source: Int32, to destination: Int32, pair: CuttingProxy.Pair, plan: Plan) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var forwarded = 0
        var first = true
        while true {
            let count = read(source, &buffer, buffer.count)
            if count <= 0 { break }
            if plan.fault == .flipRequest, plan.offset >= forwarded, plan.offset < forwarded + count {
                buffer[plan.offset - forwarded] ^= plan.bit
            }
            if plan.fault == .duplicate, first, let copy = connectUpstream() {
                // The copy goes first; its answer is read and dropped.
                Self.write(copy, buffer, count)
                Thread.sleep(forTimeInterval: 0.05)
                Thread {
                    var sink = [UInt8](repeating: 0, count: 16 * 1024)
                    var timeout = timeval(tv_sec: 5, tv_usec: 0)
                    setsockopt(copy, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    while read(copy, &sink, sink.count) > 0 {}
                    _ = Glibc.close(copy)
                }.start()
            }
            first = false
            if !Self.write(destination, buffer, count) { break }
            forwarded += count
        }
        pair.closeBoth()
    }

    private func pumpAnswer(from source: Int32, to destination: Int32, pair: CuttingProxy.Pair, plan: Plan) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var forwarded = 0
        var delayed = false
        while true {
            let count = read(source, &buffer, buffer.count)
            if count <= 0 { break }
            var chunk = count
            var cut = false
            if plan.fault == .cut, forwarded + count >= plan.offset {
                chunk = max(0, plan.offset - forwarded)
                cut = true
            }
            if plan.fault == .flipAnswer, plan.offset >= forwarded, plan.offset < forwarded + chunk {
                buffer[plan.offset - forwarded] ^= plan.bit
            }
            if plan.fault == .delay, !delayed {
                delayed = true
                Thread.sleep(forTimeInterval: Double(plan.delayMilliseconds) / 1000)
            }
            if !Self.write(destination, buffer, chunk) { break }
            forwarded += chunk
            if cut { break }
        }
        pair.closeBoth()
    }

    @discardableResult
    static func write(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let written = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, count - offset) }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }
}
