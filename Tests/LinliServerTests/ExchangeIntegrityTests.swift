import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliServer
import LinliTesting
import Testing

/// The end-to-end integrity of the exchange (PROTOCOL.md 1.4, 2.1, 2.2):
/// the answer signature, the cursor rule and the acknowledgement rule.
struct AnswerSignatureTests {
    let server = Fixtures.server
    let device = Fixtures.identity(7)
    let body = Data("an answer".utf8)
    var request: AnswerSignature.Request {
        AnswerSignature.Request(method: "GET", path: "/v1/pull?after=10", device: device.device, nonce: String(repeating: "ab", count: 16),
                                bodyHash: Blake2b256.hash(Data()))
    }

    func known(_ device: DeviceID, _ key: Data) -> PublicKey? {
        device == server.device && key == server.key.publicKey.keyID ? server.key.publicKey : nil
    }

    func refused(_ work: () throws -> Void) -> LinliError.Code? {
        do { try work(); return nil } catch let error as LinliError { return error.code } catch { return nil }
    }

    @Test func aSignedAnswerVerifiesAndItsHeadersRoundTrip() throws {
        let signed = AnswerSignature.sign(status: 200, request: request, body: body, server: server.device, key: server.key)
        let headers = Dictionary(uniqueKeysWithValues: signed.headers)
        let read = try AnswerSignature(header: { headers[$0] })
        #expect(read == signed)
        try read.verify(status: 200, request: request, body: body, key: known)
    }

    @Test func aTamperedAnswerIsRefused() throws {
        let signed = AnswerSignature.sign(status: 200, request: request, body: body, server: server.device, key: server.key)
        var flipped = body
        flipped[0] ^= 1
        #expect(refused { try signed.verify(status: 200, request: request, body: flipped, key: known) } == .badAnswerSignature)
        #expect(refused { try signed.verify(status: 401, request: request, body: body, key: known) } == .badAnswerSignature)
        var bad = signed
        bad.signature[5] ^= 0x10
        #expect(refused { try bad.verify(status: 200, request: request, body: body, key: known) } == .badAnswerSignature)
    }

    @Test func anAnswerSignedByAnotherKeyIsRefused() throws {
        let impostor = Fixtures.identity(0xEF)
        // Claims the server's device and key id, signed with another key.
        var forged = AnswerSignature.sign(status: 200, request: request, body: body, server: server.device, key: impostor.key)
        forged.keyID = server.key.publicKey.keyID
        #expect(refused { try forged.verify(status: 200, request: request, body: body, key: known) } == .badAnswerSignature)
        // Names its own key, which is no server's.
        let own = AnswerSignature.sign(status: 200, request: request, body: body, server: impostor.device, key: impostor.key)
        #expect(refused { try own.verify(status: 200, request: request, body: body, key: known) } == .badAnswerSignature)
    }

    @Test func anAnswerBoundToAnotherRequestIsRefused() throws {
        let signed = AnswerSignature.sign(status: 200, request: request, body: body, server: server.device, key: server.key)
        var other = request
        other.nonce = String(repeating: "cd", count: 16)
        #expect(refused { try signed.verify(status: 200, request: other, body: body, key: known) } == .badAnswerSignature)
        other = request
        other.path = "/v1/pull?after=11"
        #expect(refused { try signed.verify(status: 200, request: other, body: body, key: known) } == .badAnswerSignature)
        other = request
        other.bodyHash = Blake2b256.hash(Data("x".utf8))
        #expect(refused { try signed.verify(status: 200, request: other, body: body, key: known) } == .badAnswerSignature)
        other = request
        other.device = Fixtures.identity(8).device
        #expect(refused { try signed.verify(status: 200, request: other, body: body, key: known) } == .badAnswerSignature)
    }

    @Test func missingOrDamagedHeadersAreRefused() {
        #expect(refused { _ = try AnswerSignature(header: { _ in nil }) } == .badAnswerSignature)
        let signed = AnswerSignature.sign(status: 200, request: request, body: body, server: server.device, key: server.key)
        for (index, _) in signed.headers.enumerated() {
            var headers = Dictionary(uniqueKeysWithValues: signed.headers)
            let name = signed.headers[index].0
            headers[name] = String(headers[name]!.dropLast())
            #expect(refused { _ = try AnswerSignature(header: { headers[$0] }) } == .badAnswerSignature, "\(name)")
        }
    }
}

struct CursorAndAcknowledgementRuleTests {
    let li = Fixtures.identity(21, user: "李明")
    let wang = Fixtures.identity(22, user: "王芳")

    /// Three change sets of li's, as a server would number them.
    func authored() throws -> [SignedChangeSet] {
        let phone = try Fixtures.store(knowing: [li])
        for index in 0..<3 {
            try phone.write(as: li) { tx in _ = try tx.create("person", ["grid": .text("G1"), "name": .text("居民\(index)")]) }
        }
        return try phone.outbox(device: li.device, limit: 10)
    }

    @Test func theCursorStopsBeforeAChangeSetThatArrivedDamagedAndKeepsIt() throws {
        let changeSets = try authored()
        let folder = Fixtures.TemporaryDirectory()
        let replica = try Fixtures.store(path: folder.path("wang.sqlite"), knowing: [li, wang])
        var damaged = changeSets[1].envelope
        damaged[damaged.count - 3] ^= 0x01
        let offered = [changeSets[0].envelope, damaged, changeSets[2].envelope].map { OfferedChangeSet(envelope: $0) }
        let (outcomes, stored) = try replica.applyPulledPage(offered, positions: [11, 12, 13], cursor: SyncCursor(name: "s", position: 13))
        #expect(outcomes[1].arrivedDamaged)
        #expect(stored.position == 11, "the cursor moved past a damaged change set")
        #expect(try replica.cursor("s") == 11)
        #expect(try replica.counts().quarantined == 1, "the damaged bytes were not kept")
        // The next page brings it whole: the cursor moves on.
        let again = try replica.applyPulledPage([changeSets[1], changeSets[2]].map { OfferedChangeSet(envelope: $0.envelope) },
                                                positions: [12, 13], cursor: SyncCursor(name: "s", position: 13))
        #expect(again.cursor.position == 13)
        #expect(try replica.chainHeads()[li.device]?.seq == 3)
    }

    @Test func theCursorMovesPastHeldAndRefusedForWhatTheySay() throws {
        let changeSets = try authored()
        let replica = try Fixtures.store(knowing: [li, wang])
        // Change set 3 without 2: held, and the cursor moves past it.
        let (outcomes, stored) = try replica.applyPulledPage([OfferedChangeSet(envelope: changeSets[2].envelope)], positions: [7],
                                                             cursor: SyncCursor(name: "s", position: 9))
        #expect(outcomes.first.map { if case .held = $0.status { true } else { false } } == true)
        #expect(stored.position == 9)
    }

    func result(_ changeSet: SignedChangeSet, _ status: String, seq: UInt64? = nil, hash: Data? = nil) -> Linli_V1_PushResult {
        var result = Linli_V1_PushResult()
        result.hash = hash ?? changeSet.hash
        result.seq = seq ?? changeSet.header.seq
        result.status = status
        if status == "refused" {
            result.code = "schema_violation"
            result.message = "x"
        }
        return result
    }

    @Test func anAcknowledgementCountsOnlyForTheChangeSetSentInItsPlace() throws {
        let sent = try authored()
        // All three acknowledged.
        var rule = SyncClient.acknowledgement(of: sent, by: sent.map { result($0, "accepted") })
        #expect(rule.through == 3 && rule.accepted == 3)
        // A flipped seq in the second result: only the first counts.
        rule = SyncClient.acknowledgement(of: sent, by: [result(sent[0], "accepted"), result(sent[1], "accepted", seq: 125), result(sent[2], "accepted")])
        #expect(rule.through == 1)
        // A result for another change set's hash counts for nothing.
        rule = SyncClient.acknowledgement(of: sent, by: [result(sent[0], "accepted", hash: sent[1].hash)])
        #expect(rule.through == 0)
        // Held stops the run; refused counts and is reported.
        rule = SyncClient.acknowledgement(of: sent, by: [result(sent[0], "refused"), result(sent[1], "held"), result(sent[2], "accepted")])
        #expect(rule.through == 1 && rule.refused.count == 1 && rule.accepted == 0)
        // Refused for a key the server does not know yet: it waits there for
        // the certificate, so it is not settled and is sent again.
        var waiting = result(sent[1], "refused")
        waiting.code = "unknown_key"
        rule = SyncClient.acknowledgement(of: sent, by: [result(sent[0], "accepted"), waiting, result(sent[2], "accepted")])
        #expect(rule.through == 1 && rule.refused.isEmpty && rule.accepted == 1)
        // More results than change sets sent: the extra ones are ignored.
        rule = SyncClient.acknowledgement(of: [sent[0]], by: sent.map { result($0, "duplicate") })
        #expect(rule.through == 1 && rule.accepted == 1)
        // None at all.
        #expect(SyncClient.acknowledgement(of: sent, by: []).through == 0)
    }
}

/// Calls the service in process, as the simulation does.
struct InProcessTransport: SyncTransport {
    let service: SyncService
    func exchange(method: String, path: String, headers: [(String, String)], body: Data, bytesMax: Int) async throws -> TransportAnswer {
        let answer = await service.handle(method: method, target: path, header: { name in
            headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
        }, body: body)
        return TransportAnswer(status: answer.status, headers: answer.headers, body: answer.body)
    }
}

struct TrustLearningTests {
    @Test func aNewDeviceLearnsTheServersKeyBehindMoreTrustRecordsThanOnePage() async throws {
        let root = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xB3, count: 32)))
        let authority = DeviceIdentity(device: Authority.deviceID(root: root.publicKey), key: root, user: "管理员")
        let authorityStore = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: root.publicKey)
        let phone = Fixtures.identity(31, user: "李明")
        try authorityStore.issueCertificate(as: authority, device: phone.device, publicKey: phone.key.publicKey, role: .inspector, grids: ["G1"])
        for index in 0..<(Limits.changeSetsPerBatchMax + 50) {
            let other = DeviceIdentity(device: .random(), key: .generate(), user: "巡查员\(index)")
            try authorityStore.issueCertificate(as: authority, device: other.device, publicKey: other.key.publicKey, role: .inspector, grids: ["G2"])
        }
        // The server's certificate comes last, past the first page.
        try authorityStore.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey,
                                            role: .server, grids: [])
        let folder = Fixtures.TemporaryDirectory()
        let serverStore = try ReplicaStore(path: folder.path("server.sqlite"), schema: Fixtures.schema, authority: root.publicKey)
        _ = try serverStore.apply(try authorityStore.changeSets(limit: 5_000).map { OfferedChangeSet(decoding: $0.envelope) })
        let service = SyncService(storage: serverStore, identity: ServerIdentity(device: Fixtures.server.device, key: Fixtures.server.key),
                                  snapshotFolder: folder.path("snapshots"), invariants: [])
        let store = try ReplicaStore(path: folder.path("phone.sqlite"), schema: Fixtures.schema, authority: root.publicKey)
        #expect(try !store.knowsAServerKey())
        let client = SyncClient(store: store, identity: phone, transport: InProcessTransport(service: service), name: URL(string: "sim://server")!,
                                clock: ReplicaStore.systemClock, pause: { _ in })
        let report = try await client.sync()
        #expect(try store.knowsAServerKey())
        #expect(report.step?.inStep == true, "\(String(describing: report.step))")
    }
}
