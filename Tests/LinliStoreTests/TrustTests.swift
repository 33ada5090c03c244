import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// A deployment in miniature: an authority replica that issues trust
/// records, and replicas configured with its root key.
struct TrustWorld {
    let rootKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xA0, count: 32)))
    var authority: DeviceIdentity
    let authorityStore: ReplicaStore

    init() throws {
        authority = DeviceIdentity(device: Authority.deviceID(root: rootKey.publicKey), key: rootKey, user: "admin")
        authorityStore = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
    }

    func replica() throws -> ReplicaStore {
        try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
    }

    /// Every change set the authority has made, in order.
    func trustRecords() throws -> [Data] { try authorityStore.changeSets(scopes: [.system]).map(\.envelope) }

    @discardableResult
    func certify(_ identity: DeviceIdentity, role: Role, grids: Set<String> = [], from: UInt64 = 1, key: PublicKey? = nil) throws -> [SignedChangeSet] {
        try authorityStore.issueCertificate(as: authority, device: identity.device, publicKey: key ?? identity.key.publicKey,
                                            role: role, grids: grids, validFromSeq: from)
    }
}

/// Makes `count` change sets on a device's own replica, creating then
/// editing one person, and returns them.
func makeChangeSets(_ store: ReplicaStore, as identity: DeviceIdentity, count: Int, grid: String = "G1") throws -> (row: RowID, made: [SignedChangeSet]) {
    var row = RowID.random()
    var made = try store.write(as: identity) { tx in row = try tx.create("person", ["grid": .text(grid), "name": .text("n0")]) }
    for index in 1..<count {
        made += try store.write(as: identity) { tx in try tx.update("person", row, ["name": .text("n\(index)")]) }
    }
    return (row, made)
}

@Suite struct TrustTests {
    @Test func aDeviceKeyRotatedAtSequence40VerifiesOldThenNewAndRefusesTheOldKeyLater() throws {
        let world = try TrustWorld()
        let old = Fixtures.identity(21, user: "inspector")
        let newKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x5A, count: 32)))
        let renewed = DeviceIdentity(device: old.device, key: newKey, user: "inspector")
        try world.certify(old, role: .inspector, grids: ["G1"])
        try world.certify(renewed, role: .inspector, grids: ["G1"], from: 40)

        // The device's own replica knows its certificates too.
        let phone = try world.replica()
        _ = try phone.apply(world.trustRecords())
        var (row, made) = try makeChangeSets(phone, as: old, count: 39)
        for index in 40...44 {
            made += try phone.write(as: renewed) { tx in try tx.update("person", row, ["name": .text("k\(index)")]) }
        }
        #expect(made.prefix(39).allSatisfy { $0.header.keyID == old.key.publicKey.keyID })
        #expect(made.suffix(5).allSatisfy { $0.header.keyID == newKey.publicKey.keyID })

        let server = try world.replica()
        _ = try server.apply(world.trustRecords())
        #expect(try server.apply(made).allSatisfy { $0.status == .applied })
        // Change set 45 signed with the old key: refused, kept.
        let stale = try Fixtures.signed(old, seq: 45, prev: made.last!.hash, hlc: made.last!.header.hlc.rawValue + 1, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "name", value: .text("stale"))]),
        ])
        let outcome = try #require(try server.apply([stale]).first)
        #expect(outcome.error?.code == .badSignature)
        #expect(try server.quarantined().last?.envelope == stale.envelope)
        #expect(try server.row("person", row)?["name"] == .text("k44"))
        #expect(try server.audit().isClean)
    }

    @Test func aRevocationKeepsTheHonestPastAndRefusesWhatFollowsOnEveryReplica() throws {
        let world = try TrustWorld()
        let lost = Fixtures.identity(22, user: "lost phone")
        try world.certify(lost, role: .inspector, grids: ["G1"])
        let phone = try world.replica()
        _ = try phone.apply(world.trustRecords())
        let (row, made) = try makeChangeSets(phone, as: lost, count: 8)

        // One replica merges all 8, then learns the device was revoked after 5.
        let early = try world.replica()
        _ = try early.apply(world.trustRecords())
        #expect(try early.apply(made).allSatisfy { $0.status == .applied })
        #expect(try early.row("person", row)?["name"] == .text("n7"))
        try world.authorityStore.revoke(as: world.authority, device: lost.device, lastValidSeq: 5, reason: "phone reported lost")
        _ = try early.apply(world.trustRecords())

        // Another learns of the revocation first.
        let late = try world.replica()
        _ = try late.apply(world.trustRecords())
        let outcomes = try late.apply(made)
        #expect(outcomes.prefix(5).allSatisfy { $0.status == .applied })
        #expect(outcomes.suffix(3).allSatisfy { $0.error?.code == .revoked })

        for store in [early, late] {
            #expect(try store.row("person", row)?["name"] == .text("n4"), "change sets 1-5 stay, 6-8 are taken out")
            #expect(try store.counts().changeSets == 5 + world.trustRecords().count)
            let kept = try store.quarantined().filter { $0.code == .revoked }
            #expect(kept.compactMap(\.seq).sorted() == [6, 7, 8], "the revoked change sets are kept for review")
            #expect(try store.audit().isClean)
        }
        #expect(try early.stateDigest() == late.stateDigest())
    }

    @Test func theAuthorityKeyRotatesThroughAChainOfThreeSteps() throws {
        var world = try TrustWorld()
        var keys = [world.rootKey]
        for step in 1...3 {
            let next = SigningKey(seed: SecretBytes(copying: Data(repeating: UInt8(0xB0 + step), count: 32)))
            world.authority = try world.authorityStore.rotateAuthority(as: world.authority, to: next).identity
            keys.append(next)
        }
        // A certificate issued with the third new key.
        let inspector = Fixtures.identity(23)
        try world.certify(inspector, role: .inspector, grids: ["G1"])
        let replica = try world.replica()
        #expect(try replica.apply(world.trustRecords()).allSatisfy { $0.status == .applied })
        let (_, made) = try makeChangeSets(try { let s = try world.replica(); _ = try s.apply(world.trustRecords()); return s }(), as: inspector, count: 2)
        #expect(try replica.apply(made).allSatisfy { $0.status == .applied })
        #expect(try replica.audit().isClean)

        // After the rotation, the old root key can no longer certify.
        let old = DeviceIdentity(device: world.authority.device, key: keys[0], user: "admin")
        let head = try #require(try world.authorityStore.heads()[old.device])
        let forged = try Fixtures.signed(old, seq: head.seq + 1, prev: head.hash, hlc: UInt64(Date().timeIntervalSince1970 * 1000) << 16, scope: .system, rows: [
            RowChange(table: TrustSchema.certificate, row: RowID.random(), writes: [
                FieldWrite(field: "device", value: .bytes(Fixtures.identity(24).device.data)),
                FieldWrite(field: "public_key", value: .bytes(Fixtures.identity(24).key.publicKey.bytes)),
                FieldWrite(field: "role", value: .text("staff")), FieldWrite(field: "valid_from_seq", value: .integer(1)),
            ]),
        ])
        #expect(try replica.apply([forged]).first?.error?.code == .badSignature)
    }

    @Test func aRotationSignedByOnlyOneKeyIsRefusedAndAKeyNamedTwiceCountsOnce() throws {
        let world = try TrustWorld()
        let replica = try world.replica()
        let next = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xC1, count: 32)))
        let stranger = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xC2, count: 32)))
        func rotation(newKey: PublicKey, signedBy signer: SigningKey) throws -> SignedChangeSet {
            let message = Authority.rotationMessage(authority: world.authority.device, previous: world.rootKey.publicKey, next: newKey, validFromSeq: 2)
            return try Fixtures.signed(world.authority, seq: 1, prev: Data(), hlc: 1 << 16, scope: .system, rows: [
                RowChange(table: TrustSchema.authorityKey, row: RowID.random(), writes: [
                    FieldWrite(field: "public_key", value: .bytes(newKey.bytes)), FieldWrite(field: "valid_from_seq", value: .integer(2)),
                    FieldWrite(field: "new_key_signature", value: .bytes(signer.sign(message))),
                ]),
            ])
        }
        // Signed by the old key only: the statement's signature is not the new key's.
        let oldOnly = try rotation(newKey: next.publicKey, signedBy: stranger)
        #expect(try replica.apply([oldOnly]).first?.error?.code == .badSignature)
        // The old key named as the new one: one key, counted once. (A fresh
        // replica: a refused change set keeps its place in the chain, so a
        // second one at the same seq would be a fork.)
        let twice = try rotation(newKey: world.rootKey.publicKey, signedBy: world.rootKey)
        #expect(try world.replica().apply([twice]).first?.error?.code == .badSignature)
        // Signed by the new key only: that key is not the authority's yet,
        // so the change set waits as one from an unknown key.
        let newOnly = try Fixtures.signed(DeviceIdentity(device: world.authority.device, key: next, user: "x"), seq: 1, prev: Data(), hlc: 1 << 16,
                                          scope: .system, rows: try rotation(newKey: next.publicKey, signedBy: next).changeSet.rows)
        #expect(try replica.apply([newOnly]).first?.error?.code == .unknownKey)
        // Both: accepted.
        #expect(try world.replica().apply([try rotation(newKey: next.publicKey, signedBy: next)]).first?.status == .applied)
    }

    @Test func writesOutsideTheirRoleAreRefusedWithTheReason() throws {
        let world = try TrustWorld()
        let inspector = Fixtures.identity(25)
        let kiosk = Fixtures.identity(26)
        try world.certify(inspector, role: .inspector, grids: ["G1", "G2"])
        try world.certify(kiosk, role: .kiosk)
        let server = try world.replica()
        _ = try server.apply(world.trustRecords())

        let intoG3 = try Fixtures.signed(inspector, seq: 1, prev: Data(), hlc: 1 << 16, scope: .grid("G3"), rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G3")), FieldWrite(field: "name", value: .text("x"))]),
        ])
        let error = try #require(try server.apply([intoG3]).first?.error)
        #expect(error.code == .outOfScope && error.message.contains("G3"))

        let kioskIntoGrid = try Fixtures.signed(kiosk, seq: 1, prev: Data(), hlc: 1 << 16, scope: .grid("G1"), rows: intoG3.changeSet.rows.map {
            RowChange(table: $0.table, row: $0.row, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("x"))])
        })
        #expect(try server.apply([kioskIntoGrid]).first?.error?.code == .outOfScope)

        // Refused ones keep their place in the device's chain.
        let selfCertified = try Fixtures.signed(inspector, seq: 2, prev: intoG3.hash, hlc: 1 << 16, scope: .system, rows: [
            RowChange(table: TrustSchema.certificate, row: RowID.random(), writes: [
                FieldWrite(field: "device", value: .bytes(inspector.device.data)), FieldWrite(field: "public_key", value: .bytes(inspector.key.publicKey.bytes)),
                FieldWrite(field: "role", value: .text("staff")), FieldWrite(field: "valid_from_seq", value: .integer(1)),
            ]),
        ])
        #expect(try server.apply([selfCertified]).first?.error?.code == .notPermitted)
        #expect(try server.quarantined().count == 3)

        // The device's own replica refuses before signing.
        let phone = try world.replica()
        _ = try phone.apply(world.trustRecords())
        _ = try phone.apply([intoG3, selfCertified])
        #expect(throws: LinliError.self) {
            try phone.write(as: inspector) { tx in try tx.create("person", ["grid": .text("G3"), "name": .text("x")]) }
        }
        // Inside its grids it works; the kiosk writes its own submissions.
        #expect(try server.apply(try phone.write(as: inspector) { tx in try tx.create("person", ["grid": .text("G2"), "name": .text("y")]) }).first?.status == .applied)
        let kioskReplica = try world.replica()
        _ = try kioskReplica.apply(world.trustRecords())
        _ = try kioskReplica.apply([kioskIntoGrid])
        #expect(try server.apply(try kioskReplica.write(as: kiosk) { tx in try tx.create("signup", ["name": .text("志愿者")]) }).first?.status == .applied)
    }

    @Test func aChangeSetWaitingForItsCertificateIsAcceptedWhenTheCertificateArrives() throws {
        let world = try TrustWorld()
        let newcomer = Fixtures.identity(27)
        try world.certify(newcomer, role: .inspector, grids: ["G1"])
        let phone = try world.replica()
        _ = try phone.apply(world.trustRecords())
        let (row, made) = try makeChangeSets(phone, as: newcomer, count: 2)
        let server = try world.replica()
        #expect(try server.apply(made).allSatisfy { $0.error?.code == .unknownKey || $0.status == .held(missingFrom: 1) })
        _ = try server.apply(world.trustRecords())
        #expect(try server.row("person", row)?["name"] == .text("n1"))
        #expect(try server.quarantined().isEmpty)
    }

    @Test func theAuditFindsAFlippedByteAForgedCertificateAndAFork() throws {
        let world = try TrustWorld()
        let inspector = Fixtures.identity(28)
        try world.certify(inspector, role: .inspector, grids: ["G1"])
        let phone = try world.replica()
        _ = try phone.apply(world.trustRecords())
        let (_, made) = try makeChangeSets(phone, as: inspector, count: 3)
        let server = try world.replica()
        _ = try server.apply(world.trustRecords())
        _ = try server.apply(made)
        #expect(try server.audit().isClean)

        // A flipped byte in a stored change set.
        try server.database.write { db in
            var envelope = try #require(try Data.fetchOne(db, sql: "SELECT envelope FROM linli_log WHERE seq = 2 AND scope = 'grid:G1'"))
            envelope[envelope.startIndex + 40] ^= 0x01
            try db.execute(sql: "UPDATE linli_log SET envelope = ? WHERE seq = 2 AND scope = 'grid:G1'", arguments: [envelope])
        }
        var report = try server.audit()
        #expect(report.problems.contains { $0.contains("change set 2 of device \(inspector.device.hex)") }, "\(report.problems)")

        // A key trusted without a certificate.
        let forger = Fixtures.identity(29)
        try server.registerDeviceKey(device: forger.device, publicKey: forger.key.publicKey, role: .staff)
        report = try server.audit()
        #expect(report.problems.contains { $0.contains(forger.device.hex) && $0.contains("without a certificate") })

        // A fork.
        let clone = try Fixtures.signed(inspector, seq: 1, prev: Data(), hlc: 9 << 16, rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("clone"))]),
        ])
        _ = try server.apply([clone])
        report = try server.audit()
        #expect(report.forks == 1 && report.problems.contains { $0.hasPrefix("fork:") && $0.contains(inspector.device.hex) })
        #expect(!report.isClean)
    }
}

@Suite struct TrustOrderTests {
    @Test func aCertificateArrivingAfterTheDataGivesTheSameStateAsBefore() throws {
        let world = try TrustWorld()
        let device = Fixtures.identity(30)
        try world.certify(device, role: .inspector, grids: ["G1", "G2"])
        let phone = try world.replica()
        _ = try phone.apply(world.trustRecords())
        var (_, made) = try makeChangeSets(phone, as: device, count: 3)
        made += try phone.write(as: device) { tx in try tx.create("person", ["grid": .text("G2"), "name": .text("g2")]) }
        let before = try world.trustRecords()
        // The grids narrow to G1 from change set 4 on (a new key, too).
        let newKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x3C, count: 32)))
        try world.certify(device, role: .inspector, grids: ["G1"], from: 4, key: newKey.publicKey)

        let early = try world.replica()   // data first, then the certificate
        _ = try early.apply(before)
        #expect(try early.apply(made).allSatisfy { $0.status == .applied })
        _ = try early.apply(world.trustRecords())
        let late = try world.replica()    // the certificate first
        _ = try late.apply(world.trustRecords())
        let outcomes = try late.apply(made)
        #expect(outcomes.prefix(3).allSatisfy { $0.status == .applied })
        #expect(outcomes.last?.isRefused == true)

        #expect(try early.stateDigest() == late.stateDigest())
        #expect(try early.counts().changeSets == late.counts().changeSets)
        #expect(try early.quarantined().map(\.seq) == [4])
        #expect(try early.audit().isClean && late.audit().isClean)
    }

    @Test func aCertificateCannotNameTheAuthorityAndTheAuthorityCannotRevokeItself() throws {
        let world = try TrustWorld()
        let replica = try world.replica()
        #expect(throws: LinliError.self) {
            try world.authorityStore.issueCertificate(as: world.authority, device: world.authority.device,
                                                      publicKey: Fixtures.identity(31).key.publicKey, role: .staff, grids: [])
        }
        #expect(throws: LinliError.self) {
            try world.authorityStore.revoke(as: world.authority, device: world.authority.device, lastValidSeq: 0, reason: "x")
        }
        #expect(try world.trustRecords().isEmpty)
        #expect(try replica.audit().isClean)
    }
}

/// Trust records and data reach replicas in any order, with duplicates:
/// every replica must end with the same log, state and conflicts.
@Suite struct TrustConvergenceTests {
    static var seeds: [UInt64] {
        if let text = ProcessInfo.processInfo.environment["LINLI_TRUST_SEEDS"] {
            let parts = text.split(separator: "-").compactMap { UInt64($0) }
            return parts.count == 2 ? Array(parts[0]...parts[1]) : parts
        }
        return Array(0..<60)
    }

    @Test("replicas agree whatever order trust records and data arrive in", arguments: seeds)
    func converges(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let world = try TrustWorld()
        let devices = (0..<3).map { Fixtures.identity(UInt8(40 + $0)) }
        for device in devices { try world.certify(device, role: .inspector, grids: ["G1"]) }
        var data: [SignedChangeSet] = []
        var shared: [RowID] = []
        // Each device records on its own phone; rows are shared through the
        // phones so edits race.
        let phones = try devices.map { _ in try world.replica() }
        for phone in phones { _ = try phone.apply(world.trustRecords()) }
        let rotated = SigningKey(seed: SecretBytes(copying: Data(repeating: UInt8(truncatingIfNeeded: seed) | 1, count: 32)))
        let rotateAt = UInt64(Int.random(in: 2...5, using: &random))
        var identities = devices
        for step in 0..<18 {
            let index = Int.random(in: 0..<3, using: &random)
            let phone = phones[index]
            let seq = (try phone.heads()[devices[index].device]?.seq ?? 0) + 1
            if index == 1, seq == rotateAt {
                try world.certify(devices[1], role: .inspector, grids: ["G1"], from: rotateAt, key: rotated.publicKey)
                for phone in phones { _ = try phone.apply(world.trustRecords()) }
                identities[1] = DeviceIdentity(device: devices[1].device, key: rotated, user: devices[1].user)
            }
            _ = try phone.apply(data)
            let made: [SignedChangeSet]
            if let row = shared.randomElement(using: &random), Bool.random(using: &random),
               try phone.row("person", row)?[MergeRules.deletedField] == .boolean(false) {
                made = try phone.write(as: identities[index]) { tx in try tx.update("person", row, ["phone": .text("1380000\(step)")]) }
            } else {
                var row = RowID.random()
                made = try phone.write(as: identities[index]) { tx in row = try tx.create("person", ["grid": .text("G1"), "name": .text("p\(step)")]) }
                shared.append(row)
            }
            data += made
        }
        // Revoke device 0 at a random point of its history.
        let revokedAfter = UInt64(Int.random(in: 0...4, using: &random))
        try world.authorityStore.revoke(as: world.authority, device: devices[0].device, lastValidSeq: revokedAfter, reason: "lost")
        let everything = try world.trustRecords() + data.map(\.envelope)

        var digests = Set<Data>()
        var logs = Set<Int>()
        var conflicts: [[Conflict]] = []
        for _ in 0..<4 {
            let replica = try world.replica()
            var order = everything + everything.prefix(Int.random(in: 0...everything.count, using: &random))
            order.shuffle(using: &random)
            // Deliver in a few separate applies, as syncs would.
            var start = 0
            while start < order.count {
                let end = min(order.count, start + Int.random(in: 1...12, using: &random))
                _ = try replica.apply(Array(order[start..<end]))
                start = end
            }
            #expect(try replica.quarantined().allSatisfy { $0.code == .revoked }, "seed \(seed): only revoked change sets stay refused")
            digests.insert(try replica.stateDigest())
            logs.insert(try replica.counts().changeSets)
            conflicts.append(try replica.conflicts())
            #expect(try replica.counts().held == 0, "seed \(seed): change sets still held")
            let audit = try replica.audit()
            #expect(audit.isClean, "seed \(seed): \(audit.problems)")
        }
        #expect(digests.count == 1, "seed \(seed): replicas differ")
        #expect(logs.count == 1, "seed \(seed): logs differ in length")
        #expect(conflicts.allSatisfy { $0 == conflicts[0] }, "seed \(seed): conflicts differ")
    }
}

/// The heads a server answers (PROTOCOL.md 2.6) come from linli_scope_head,
/// which triggers on the log keep; they must be what a scan of the log
/// gives, also after a revocation takes change sets out of the log.
@Suite struct ScopeHeadTests {
    @Test func scopedHeadsAreTheNewestLoggedChangeSetPerDeviceAcrossTheAskersScopes() throws {
        let world = try TrustWorld()
        let one = Fixtures.identity(40, user: "甲"), two = Fixtures.identity(41, user: "乙"), asker = Fixtures.identity(42, user: "丙")
        try world.certify(one, role: .inspector, grids: ["G1", "G2"])
        try world.certify(two, role: .inspector, grids: ["G2"])
        try world.certify(asker, role: .inspector, grids: ["G1"])
        let phoneOne = try world.replica(), phoneTwo = try world.replica(), server = try world.replica()
        for store in [phoneOne, phoneTwo, server] { _ = try store.apply(world.trustRecords()) }
        let (_, inG1) = try makeChangeSets(phoneOne, as: one, count: 3, grid: "G1")     // seq 1-3
        let (_, inG2) = try makeChangeSets(phoneOne, as: one, count: 2, grid: "G2")     // seq 4-5
        let (_, twoInG2) = try makeChangeSets(phoneTwo, as: two, count: 4, grid: "G2")
        #expect(try server.apply(inG1 + inG2 + twoInG2).allSatisfy { $0.status == .applied })

        func heads(_ scopes: Set<Scope>) throws -> [DeviceID: UInt64] {
            Dictionary(uniqueKeysWithValues: try server.heads(scopes: scopes, asker: asker.device).map { ($0.device, $0.seq) })
        }
        #expect(try heads([.grid("G1")]) == [one.device: 3])
        #expect(try heads([.grid("G2")]) == [one.device: 5, two.device: 4])
        #expect(try heads([.grid("G1"), .grid("G2")]) == [one.device: 5, two.device: 4])
        #expect(try server.heads(scopes: [.grid("G1")], asker: asker.device).first { $0.device == one.device }?.hash == inG1[2].hash)

        // Revoked after 4: change set 5 (G2) leaves the log, 4 is G2's head again.
        try world.authorityStore.revoke(as: world.authority, device: one.device, lastValidSeq: 4, reason: "phone reported lost")
        _ = try server.apply(world.trustRecords())
        #expect(try heads([.grid("G2")]) == [one.device: 4, two.device: 4])
        #expect(try heads([.grid("G1")]) == [one.device: 3])
        #expect(try server.heads(scopes: [.grid("G2")], asker: asker.device).first { $0.device == one.device }?.hash == inG2[0].hash)

        // A store reopened from its file keeps the same heads (the table is on disk, not in memory).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("linli-scope-head-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("server.sqlite").path
        do {
            let onDisk = try ReplicaStore(path: path, schema: Fixtures.schema, authority: world.rootKey.publicKey)
            _ = try onDisk.apply(world.trustRecords())
            _ = try onDisk.apply(inG1 + twoInG2)
        }
        let reopened = try ReplicaStore(path: path, schema: Fixtures.schema, authority: world.rootKey.publicKey)
        let again = Dictionary(uniqueKeysWithValues: try reopened.heads(scopes: [.grid("G1"), .grid("G2")], asker: asker.device).map { ($0.device, $0.seq) })
        #expect(again == [one.device: 3, two.device: 4])
    }
}
