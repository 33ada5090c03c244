import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import CompressNIO
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
@testable import LinliServer
@testable import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// What a hostile client sends, against a real `linli-server` on loopback:
/// numbers at the ends of their type, filters no person would ask for, the
/// paths around `/metrics`, and one device sending more than its share.
@Suite(.serialized) struct SecurityRegressionTests {
    let rootKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xD5, count: 32)))
    var authority: DeviceIdentity { DeviceIdentity(device: Authority.deviceID(root: rootKey.publicKey), key: rootKey, user: "admin") }
    let li = Fixtures.identity(91, user: "李明")
    let zhang = Fixtures.identity(92, user: "张伟")

    /// A server that knows li (inspector of G1) and zhang (staff).
    func deployment(settings: [String: String] = [:]) async throws -> RunningServer {
        let authorityStore = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
        try authorityStore.issueCertificate(as: authority, device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
        try authorityStore.issueCertificate(as: authority, device: zhang.device, publicKey: zhang.key.publicKey, role: .staff, grids: [])
        try authorityStore.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey, role: .server, grids: [])
        let server = try await RunningServer(authority: rootKey.publicKey, settings: settings)
        let report = try await SyncClient(store: authorityStore, identity: authority, server: server.url).sync()
        #expect(report.accepted == 3 && report.refused.isEmpty, "\(report)")
        return server
    }

    static var now: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    func isAlive(_ server: RunningServer) async -> Bool {
        guard let (_, response) = try? await URLSession.shared.data(from: server.url.appendingPathComponent("healthz")) else { return false }
        return (response as? HTTPURLResponse)?.statusCode == 200 && server.process.isRunning
    }

    // MARK: - A push body is read only after its headers pass

    @Test func aPushWithoutAValidDeviceIsRefusedBeforeItsBodyIsRead() async throws {
        let server = try await deployment()
        let port = try #require(server.url.port)
        let body = 16 * 1024 * 1024 - 1
        func head(_ headers: [String]) -> Data {
            Data((["POST /v1/push HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-protobuf", "Content-Length: \(body)"]
                  + headers + ["", ""]).joined(separator: "\r\n").utf8)
        }
        // No signature headers at all, a few bytes of a 16 MiB body: the
        // answer comes at once, without waiting for the rest.
        let bare = CuttingProxy.answerBeforeTheRest(port: port, sending: head([]) + Data(repeating: 0x41, count: 10), seconds: 5)
        #expect(bare?.hasPrefix("HTTP/1.1 401") == true, "\(bare ?? "no answer before the body")")
        // Well-formed headers of a device the server does not know.
        let stranger = Fixtures.identity(93)
        let signature = RequestSignature.sign(method: "POST", path: "/v1/push", body: Data(), device: stranger.device, key: stranger.key, time: Self.now, nonce: String(repeating: "a", count: 32))
        let unknown = CuttingProxy.answerBeforeTheRest(port: port, sending: head(signature.headers.map { "\($0.0): \($0.1)" }), seconds: 5)
        #expect(unknown?.hasPrefix("HTTP/1.1 4") == true, "\(unknown ?? "no answer before the body")")
        #expect(unknown?.contains("unknown_device") == true, "\(unknown ?? "")")
        // A known device announcing more than the limit.
        var tooLong = head(RequestSignature.sign(method: "POST", path: "/v1/push", body: Data(), device: li.device, key: li.key, time: Self.now, nonce: String(repeating: "b", count: 32))
            .headers.map { "\($0.0): \($0.1)" })
        tooLong = Data(String(decoding: tooLong, as: UTF8.self).replacingOccurrences(of: "Content-Length: \(body)", with: "Content-Length: \(Limits.requestBodyBytesMax + 1)").utf8)
        let over = CuttingProxy.answerBeforeTheRest(port: port, sending: tooLong, seconds: 5)
        #expect(over?.hasPrefix("HTTP/1.1 413") == true, "\(over ?? "no answer before the body")")
        // A header field past requestHeaderFieldBytesMax is not read on.
        let huge = "X-Padding: " + String(repeating: "a", count: Limits.requestHeaderFieldBytesMax + 1)
        let padded = CuttingProxy.answerBeforeTheRest(port: port, sending: head([huge]), seconds: 5)
        #expect(padded == nil || padded?.hasPrefix("HTTP/1.1 4") == true, "\(padded ?? "")")
        #expect(padded?.hasPrefix("HTTP/1.1 401") != true, "the oversized header reached the signature check: \(padded ?? "")")
        #expect(await isAlive(server))
    }

    // MARK: - Connections that say nothing, and bodies that trickle

    /// Finding 4's connections stayed open for ever. With the timeouts set
    /// short (an operator may shorten them; the defaults are the limits), a
    /// silent connection is closed, and so is a push whose body trickles in
    /// a byte at a time, often enough never to look idle.
    @Test func anIdleConnectionAndATricklingBodyAreCutOff() async throws {
        let server = try await deployment(settings: ["connection_idle_seconds": "2", "body_read_seconds": "3"])
        let port = try #require(server.url.port)
        let idle = CuttingProxy.trickle(port: port, head: Data(), interval: nil, seconds: 20)
        let idleClosed = try #require(idle.closedAfter, "a connection that sent nothing was still open after 20 s")
        #expect(idleClosed >= 1.5 && idleClosed < 10, "closed after \(idleClosed) s")

        // An enrolled device's valid headers, then a byte every 0.5 s of a 1,000-byte body.
        let signature = RequestSignature.sign(method: "POST", path: "/v1/push", body: Data(), device: li.device, key: li.key, time: Self.now,
                                              nonce: String(repeating: "c", count: 32))
        let head = Data((["POST /v1/push HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-protobuf", "Content-Length: 1000"]
                         + signature.headers.map { "\($0.0): \($0.1)" } + ["", ""]).joined(separator: "\r\n").utf8)
        let trickled = CuttingProxy.trickle(port: port, head: head, interval: 0.5, seconds: 30)
        let trickleEnded = try #require(trickled.closedAfter, "a body trickling for 30 s was still being read: \(trickled.answer)")
        #expect(trickleEnded >= 2.5 && trickleEnded < 15, "ended after \(trickleEnded) s")
        #expect(trickled.answer.isEmpty || trickled.answer.hasPrefix("HTTP/1.1 4"), "\(trickled.answer)")
        #expect(await isAlive(server))

        // Out of range, the setting is refused with its name and range.
        let refused = try Programs.run(RunningServer.executable, ["serve", "--authority", rootKey.publicKey.hex, "--connection-idle-seconds", "3600"])
        #expect(refused.status != 0 && refused.error.contains("connection_idle_seconds takes whole seconds from 1 to \(Limits.connectionIdleSecondsMax)"),
                "\(refused.error)")
    }

    // MARK: - A compression bomb in a pull answer

    @Test func aGzipAnswerThatGrowsAThousandfoldIsRefusedAsTooLarge() async throws {
        // Something on the way answers every request with 64 MiB of zeros,
        // gzip-compressed to some 64 KiB: more than gzipExpansionRatioMax.
        var zeros = ByteBuffer(repeating: 0, count: 64 << 20)
        let bomb = Data(try zeros.compress(with: .gzip()).readableBytesView)
        let (listener, port) = try CuttingProxy.listenOnLoopback()
        defer { _ = Glibc.close(listener) }
        let served = Thread {
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                var request = [UInt8](repeating: 0, count: 65_536)
                _ = recv(connection, &request, request.count, 0)
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\nContent-Length: \(bomb.count)\r\nConnection: close\r\n\r\n"
                let answer = Data(head.utf8) + bomb
                _ = answer.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                _ = Glibc.close(connection)
            }
        }
        served.start()
        let store = try Fixtures.store(knowing: [li])
        let client = SyncClient(store: store, identity: li, server: URL(string: "http://127.0.0.1:\(port)")!, attemptsMax: 1)
        do {
            _ = try await client.sync()
            Issue.record("an answer of gzip zeros was taken")
        } catch let error as LinliError {
            #expect(error.message.contains("larger than this device accepts"), "\(error.message)")
        }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    // MARK: - Request times at the ends of UInt64

    @Test func aRequestTimeAtTheEndOfUInt64IsRefusedStaleAndTheServerStaysUp() async throws {
        let server = try await RunningServer(authority: rootKey.publicKey)
        // Any hex will do: the time is judged before any key is looked up.
        for time in ["18446744073709551615", "18446744073709251615", "0"] {
            let headers = [("Linli-Device", String(repeating: "ab", count: 16)), ("Linli-Key", String(repeating: "cd", count: 8)),
                           ("Linli-Time", time), ("Linli-Nonce", String(repeating: "ef", count: 16)),
                           ("Linli-Signature", String(repeating: "01", count: 64))]
            let (status, error) = try await server.send("GET", "/v1/status", body: Data(), headers: headers)
            #expect(status == 401 && error["code"] == "stale_request", "time \(time): \(status) \(error)")
            #expect(await isAlive(server), "the server died on Linli-Time \(time)")
        }
    }

    @Test func theVerifierSaturatesAtTheEndsOfTheClock() throws {
        let verifier = RequestVerifier()
        let key: (DeviceID) throws(LinliError) -> PublicKey = { _ in self.li.key.publicKey }
        // A server clock at the very end of UInt64: the window saturates
        // instead of wrapping, and a request at that time is taken.
        let last = RequestSignature.sign(method: "GET", path: "/v1/status", body: Data(), device: li.device, key: li.key, time: .max)
        try verifier.verify(last, method: "GET", path: "/v1/status", body: Data(), now: .max, key: key)
        // A server clock near 0: a request at time 0 is inside the window.
        let first = RequestSignature.sign(method: "GET", path: "/v1/status", body: Data(), device: li.device, key: li.key, time: 0)
        try verifier.verify(first, method: "GET", path: "/v1/status", body: Data(), now: 1_000, key: key)
        // And a far-future time against an ordinary clock is stale, not a trap.
        let future = RequestSignature.sign(method: "GET", path: "/v1/status", body: Data(), device: li.device, key: li.key, time: .max)
        #expect(throws: LinliError.self) { try verifier.verify(future, method: "GET", path: "/v1/status", body: Data(), now: Self.now, key: key) }
        do {
            try verifier.verify(future, method: "GET", path: "/v1/status", body: Data(), now: Self.now, key: key)
        } catch {
            #expect(error.code == .staleRequest)
        }
        #expect(UInt64.max.addingSaturated(1) == .max && UInt64(0).subtractingSaturated(1) == 0 && UInt64.max.multipliedSaturated(by: 2) == .max)
        #expect(UInt64(5).addingSaturated(7) == 12 && UInt64(7).subtractingSaturated(5) == 2 && UInt64(6).multipliedSaturated(by: 7) == 42)
    }

    // MARK: - The queue's age filter

    @Test func aStaffDeviceAskingForAnAbsurdAgeIsRefusedAndTheServerStaysUp() async throws {
        let server = try await deployment()
        func queue(_ older: String) async throws -> (Int, [String: String]) {
            let path = "/v1/desk/queue?older=\(older)"
            let signature = RequestSignature.sign(method: "GET", path: path, body: Data(), device: zhang.device, key: zhang.key, time: Self.now)
            return try await server.send("GET", path, body: Data(), headers: signature.headers)
        }
        for older in ["18446744073709551", "18446744073709551615", String(Limits.deskOlderSecondsMax + 1)] {
            let (status, error) = try await queue(older)
            #expect(status == 400 && error["code"] == "invalid_input", "older=\(older): \(status) \(error)")
            #expect(error["message"]?.contains("deskOlderSecondsMax") == true, "\(error)")
            #expect(await isAlive(server), "the server died on older=\(older)")
        }
        let (status, _) = try await queue(String(Limits.deskOlderSecondsMax))
        #expect(status == 200)
        #expect(await isAlive(server))
    }

    @Test func theAgeFilterComparesWithoutOverflowAndKeepsItsMeaning() {
        let item = ReviewItem(id: "c1", kind: .conflict, scope: "grid:G1", grid: "G1", table: "person", row: "r", field: "phone",
                              detectedAt: 10_000, summary: "")
        func matches(_ seconds: UInt64, now: UInt64) -> Bool { ReviewFilter(olderThanSeconds: seconds).matches(item, now: now) }
        #expect(!matches(.max, now: .max))
        #expect(!matches(UInt64.max / 1000 + 1, now: 20_000))
        #expect(matches(10, now: 20_000) && !matches(10, now: 19_999) && !matches(11, now: 20_000))
        #expect(matches(0, now: 10_000) && !matches(0, now: 9_999))
    }

    // MARK: - /metrics and the paths around it

    @Test func theServerAnswersMetricsOnlyAtTheExactPath() async throws {
        let server = try await RunningServer(authority: rootKey.publicKey)
        let (_, exact) = try await URLSession.shared.data(from: URL(string: server.url.absoluteString + "/metrics")!)
        #expect((exact as? HTTPURLResponse)?.statusCode == 200)
        for path in ["/metrics/", "/metrics//", "//metrics"] {
            let (data, response) = try await URLSession.shared.data(from: URL(string: server.url.absoluteString + path)!)
            let status = (response as? HTTPURLResponse)?.statusCode
            #expect(status == 404, "\(path): \(status.map(String.init) ?? "none")")
            #expect(!String(decoding: data, as: UTF8.self).contains("linli_"), "\(path) showed the metrics")
        }
    }

    // MARK: - Nonces per device

    @Test func oneDeviceCannotFillTheNonceWindowForOthers() throws {
        let verifier = RequestVerifier(noncesPerDeviceMax: 5, noncesMax: 8)
        let wang = Fixtures.identity(93, user: "王芳")
        let keys = [li.device: li.key.publicKey, wang.device: wang.key.publicKey]
        let key: (DeviceID) throws(LinliError) -> PublicKey = { device throws(LinliError) in
            guard let found = keys[device] else { throw LinliError(.unknownDevice, "unknown") }
            return found
        }
        let start = Self.now
        func send(_ who: DeviceIdentity, at now: UInt64) -> LinliError.Code? {
            let signature = RequestSignature.sign(method: "GET", path: "/v1/status", body: Data(), device: who.device, key: who.key, time: now)
            do {
                try verifier.verify(signature, method: "GET", path: "/v1/status", body: Data(), now: now, key: key)
                return nil
            } catch {
                return error.code
            }
        }
        // li sends as fast as it can: its share is 5 nonces in the window.
        let li = self.li
        #expect((0..<5).map { _ in send(li, at: start) }.allSatisfy { $0 == nil })
        #expect((0..<20).map { _ in send(li, at: start) }.allSatisfy { $0 == .overLimit })
        // wang is not refused for li's requests.
        #expect((0..<3).map { _ in send(wang, at: start) }.allSatisfy { $0 == nil })
        // The whole window is bounded too (8 here): then everyone waits.
        #expect(send(wang, at: start) == .overLimit)
        // Once li's requests are outside the window, li may send again.
        let later = start + 2 * Limits.requestClockSkewMillisecondsMax + 1
        #expect(send(li, at: later) == nil && send(wang, at: later) == nil)
    }

    // MARK: - Desk sessions end when they expire, requests or not

    @Test func expiredDeskSessionsAreSweptWithTheirKeys() async throws {
        let sessions = DeskSessions()
        let start: UInt64 = 1_000_000
        let idle = Limits.deskSessionIdleSecondsMax * 1000
        let first = await sessions.open(identity: zhang, now: start)
        #expect(await sessions.count == 1)
        // Another staff member logs in after the first session expired:
        // the first one is ended, not kept with its unsealed key.
        let second = await sessions.open(identity: li, now: start + idle + 1)
        #expect(await sessions.count == 1)
        #expect(await sessions.find(token: first, now: start + idle + 2) == nil)
        #expect(await sessions.find(token: second, now: start + idle + 2)?.identity.user == li.user)
        // With no request at all, the sweep alone ends it.
        await sessions.sweep(now: start + 3 * idle)
        #expect(await sessions.count == 0)
    }

    // MARK: - A snapshot manifest's numbers

    @Test func aSnapshotManifestWithNumbersPastInt64IsRefusedNotATrap() throws {
        let folder = Fixtures.TemporaryDirectory()
        let file = folder.path("snapshot.sqlite")
        try Data("not much of a replica".utf8).write(to: URL(fileURLWithPath: file))
        func adopt(_ edit: (inout Linli_V1_SnapshotManifest) -> Void) -> LinliError? {
            var manifest = Linli_V1_SnapshotManifest()
            manifest.format = 1
            manifest.serverDevice = li.device.data
            manifest.takenAtMs = UInt64(Date().timeIntervalSince1970 * 1000)
            edit(&manifest)
            do {
                _ = try ReplicaStore.adoptSnapshot(file: file, manifest: try manifest.serializedBytes(), signature: Data(count: 64),
                                                   authority: rootKey.publicKey, schema: Fixtures.schema,
                                                   at: folder.path("replica.sqlite"), cursorName: "server")
                return nil
            } catch let error as LinliError {
                return error
            } catch {
                return LinliError(.storage, "\(error)")
            }
        }
        // The size is compared before the signature is checked: a manifest
        // anyone can write must not stop the device.
        let size = adopt { $0.fileBytes = .max }
        #expect(size?.code == .damagedFile && size?.message.contains("18446744073709551615") == true, "\(String(describing: size))")
        let cursor = adopt { $0.cursor = .max }
        #expect(cursor?.code == .malformed && cursor?.message.contains("cursor") == true, "\(String(describing: cursor))")
        // Its age: from the far future, or weeks old, it is a replay or a forgery.
        #expect(adopt { $0.takenAtMs = .max }?.code == .staleRequest)
        #expect(adopt { $0.takenAtMs = 1 }?.code == .staleRequest)
        #expect(!FileManager.default.fileExists(atPath: folder.path("replica.sqlite")))
    }

    // MARK: - The largest sequence number

    @Test func aChangeSetAtTheLargestSequenceNumberReleasesNothingAndDoesNotTrap() throws {
        let replica = try Fixtures.store(knowing: [li])
        let now = Self.now
        func house() -> RowChange {
            RowChange(table: "house", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G1")),
                                                                     FieldWrite(field: "address", value: .text("幸福路 1 号"))])
        }
        let first = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, rows: [house()])
        let waiting = try Fixtures.signed(li, seq: 3, prev: Data(repeating: 7, count: 32), hlc: (now + 1) << 16, rows: [house()])
        let last = try Fixtures.signed(li, seq: Limits.sequenceNumberMax, prev: Data(repeating: 9, count: 32), hlc: (now + 2) << 16, rows: [house()])
        #expect(try replica.apply([first]).map(\.status) == [.applied])
        #expect(try replica.apply([waiting]).map(\.status) == [.held(missingFrom: 2)])
        // Pulled with its predecessor among what this replica has: applied,
        // and the held change sets after it are looked for without a trap.
        let outcome = try replica.apply([OfferedChangeSet(envelope: last.envelope, scopedPredecessor: 1)])
        #expect(outcome.map(\.status) == [.applied])
        #expect(try replica.heads()[li.device]?.seq == Limits.sequenceNumberMax)
    }
}
