import Foundation
import LinliCore
import Testing

@Suite("Merge rules") struct MergeRulesTests {
    static func survivor(_ device: DeviceID, seq: UInt64 = 1, index: UInt32 = 0, millis: UInt64, counter: UInt64 = 0,
                         _ value: Value = .null) -> Survivor {
        Survivor(dot: Dot(device: device, seq: seq, index: index), hlc: HLCTimestamp(milliseconds: millis, counter: counter), value: value)
    }

    @Test("the greater clock wins, whatever the device, seq and index")
    func greaterClockWins() {
        let newer = Self.survivor(Make.deviceA, seq: 1, index: 0, millis: 2_000)
        let older = Self.survivor(Make.deviceC, seq: 99, index: 9, millis: 1_999, counter: 0xFFFF)
        #expect(MergeRules.outranks(newer, older))
        #expect(!MergeRules.outranks(older, newer))
        let counterAhead = Self.survivor(Make.deviceA, millis: 2_000, counter: 1)
        #expect(MergeRules.outranks(counterAhead, newer))
    }

    @Test("on equal clocks the greater device id wins")
    func tieBrokenByDevice() {
        let a = Self.survivor(Make.deviceA, seq: 50, index: 50, millis: 1_000)
        let b = Self.survivor(Make.deviceB, seq: 1, index: 0, millis: 1_000)
        #expect(Make.deviceA < Make.deviceB)
        #expect(MergeRules.outranks(b, a))
        #expect(!MergeRules.outranks(a, b))
    }

    @Test("on equal clocks and devices the greater seq wins, then the greater index")
    func tieBrokenBySeqThenIndex() {
        let seq1 = Self.survivor(Make.deviceA, seq: 1, index: 7, millis: 1_000)
        let seq2 = Self.survivor(Make.deviceA, seq: 2, index: 0, millis: 1_000)
        #expect(MergeRules.outranks(seq2, seq1))
        #expect(!MergeRules.outranks(seq1, seq2))
        let index3 = Self.survivor(Make.deviceA, seq: 2, index: 3, millis: 1_000)
        #expect(MergeRules.outranks(index3, seq2))
        #expect(!MergeRules.outranks(seq2, index3))
    }

    @Test("a survivor does not outrank itself")
    func irreflexive() {
        let s = Self.survivor(Make.deviceA, millis: 1)
        #expect(!MergeRules.outranks(s, s))
    }

    @Test("shown of no survivors is nil")
    func shownEmpty() {
        #expect(MergeRules.shown([Survivor]()) == nil)
    }

    @Test("shown picks the top survivor, in whatever order they come")
    func shownPicksTop() {
        let survivors = [
            Self.survivor(Make.deviceA, seq: 3, millis: 5_000, .text("a")),
            Self.survivor(Make.deviceC, seq: 1, millis: 4_000, .text("c")),
            Self.survivor(Make.deviceB, seq: 2, index: 1, millis: 5_000, .text("b1")),
            Self.survivor(Make.deviceB, seq: 2, index: 0, millis: 5_000, .text("b0")),
        ]
        for order in permutations(survivors) {
            #expect(MergeRules.shown(order)?.value == .text("b1"))
        }
        #expect(MergeRules.shown([survivors[1]]) == survivors[1])
    }

    @Test("canonical order sorts survivors by dot")
    func canonicalOrder() {
        let survivors = [
            Self.survivor(Make.deviceC, seq: 1, millis: 1),
            Self.survivor(Make.deviceA, seq: 2, index: 1, millis: 9),
            Self.survivor(Make.deviceA, seq: 2, index: 0, millis: 3),
            Self.survivor(Make.deviceB, seq: 1, millis: 5),
        ]
        let ordered = MergeRules.canonicalOrder(survivors)
        #expect(ordered.map(\.dot) == survivors.map(\.dot).sorted())
        #expect(ordered.map(\.dot.device) == [Make.deviceA, Make.deviceA, Make.deviceB, Make.deviceC])
    }
}

@Suite("Memory field state") struct MemoryFieldStateTests {
    static let nameKey = MemoryFieldState.Key(table: "person", row: Make.row1, field: "name")
    static let phoneKey = MemoryFieldState.Key(table: "person", row: Make.row1, field: "phone")

    static func dot(_ device: DeviceID, _ seq: UInt64, _ index: UInt32 = 0) -> Dot { Dot(device: device, seq: seq, index: index) }

    static func state(_ changeSets: [ChangeSet]) -> MemoryFieldState {
        var state = MemoryFieldState()
        for changeSet in changeSets { state.apply(changeSet) }
        return state
    }

    static func values(_ state: MemoryFieldState, _ key: MemoryFieldState.Key = nameKey) -> [Value] {
        (state.fields[key] ?? []).map(\.value)
    }

    @Test("a first write leaves one survivor with its dot, clock and value")
    func firstWrite() throws {
        let state = Self.state([Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))])
        let survivors = try #require(state.fields[Self.nameKey])
        #expect(survivors == [Survivor(dot: Self.dot(Make.deviceA, 1), hlc: HLCTimestamp(milliseconds: 1_000, counter: 0), value: .text("a"))])
        #expect(state.conflicts.isEmpty)
        #expect(state.applied.count == 1)
        #expect(state.applied.first?.device == Make.deviceA)
        #expect(state.applied.first?.seq == 1)
    }

    @Test("a write replacing the only survivor leaves one survivor")
    func replaceOnlySurvivor() throws {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])
        let state = Self.state([a, b])
        #expect(Self.values(state) == [.text("b")])
        #expect(state.fields[Self.nameKey]?.first?.dot == Self.dot(Make.deviceB, 1))
        #expect(state.conflicts.isEmpty)
        #expect(state.replacedEarly.isEmpty)
    }

    @Test("a write replacing survivors even with an older clock wins: replacement, not time, decides")
    func replacementBeatsClock() {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 9_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 1_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])
        #expect(Self.values(Self.state([a, b])) == [.text("b")])
        #expect(Self.values(Self.state([b, a])) == [.text("b")])
    }

    @Test("two concurrent writes both survive and the field is listed as a conflict")
    func concurrentWritesConflict() throws {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])
        let c = Make.write(device: Make.deviceC, seq: 1, millis: 3_000, value: .text("c"), replaces: [Self.dot(Make.deviceA, 1)])
        let state = Self.state([a, b, c])
        #expect(Self.values(state) == [.text("b"), .text("c")]) // canonical order: by dot
        #expect(state.conflicts == [Self.nameKey])
        #expect(MergeRules.shown(state.fields[Self.nameKey] ?? [])?.value == .text("c"))

        // Two first writes with nothing to replace conflict too.
        let x = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, row: Make.row2, value: .integer(1))
        let y = Make.write(device: Make.deviceB, seq: 1, millis: 1_000, row: Make.row2, value: .integer(2))
        let both = Self.state([x, y])
        #expect(both.conflicts == [MemoryFieldState.Key(table: "person", row: Make.row2, field: "name")])
    }

    @Test("a write that replaces both sides of a conflict resolves it")
    func resolveConflict() {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])
        let c = Make.write(device: Make.deviceC, seq: 1, millis: 3_000, value: .text("c"), replaces: [Self.dot(Make.deviceA, 1)])
        let half = Make.write(device: Make.deviceA, seq: 2, millis: 4_000, value: .text("half"), replaces: [Self.dot(Make.deviceB, 1)])
        let halfState = Self.state([a, b, c, half])
        #expect(Self.values(halfState) == [.text("half"), .text("c")])
        #expect(halfState.conflicts == [Self.nameKey])

        let full = Make.write(device: Make.deviceB, seq: 2, millis: 5_000, value: .text("final"),
                              replaces: [Self.dot(Make.deviceA, 2), Self.dot(Make.deviceC, 1)])
        let resolved = Self.state([a, b, c, half, full])
        #expect(Self.values(resolved) == [.text("final")])
        #expect(resolved.conflicts.isEmpty)
    }

    @Test("a write arriving after the write that replaced it never survives, in both delivery orders")
    func replacedEarly() throws {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])

        var late = MemoryFieldState()
        late.apply(b)
        #expect(late.replacedEarly.map(\.dot) == [Self.dot(Make.deviceA, 1)])
        #expect(Self.values(late) == [.text("b")])
        late.apply(a)
        #expect(Self.values(late) == [.text("b")])
        #expect(late.replacedEarly.isEmpty)
        #expect(late.conflicts.isEmpty)

        let inOrder = Self.state([a, b])
        #expect(late == inOrder)
        #expect(late.fields == inOrder.fields)
    }

    @Test("a chain of replacements delivered backwards ends with the last write alone")
    func chainDeliveredBackwards() {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])
        let c = Make.write(device: Make.deviceC, seq: 1, millis: 3_000, value: .text("c"), replaces: [Self.dot(Make.deviceB, 1)])
        let d = Make.write(device: Make.deviceA, seq: 2, millis: 4_000, value: .text("d"), replaces: [Self.dot(Make.deviceC, 1)])
        let backwards = Self.state([d, c, b, a])
        #expect(Self.values(backwards) == [.text("d")])
        #expect(backwards.replacedEarly.isEmpty)
        #expect(backwards == Self.state([a, b, c, d]))
    }

    @Test("a replaced-early write keeps its other writes: only the replaced dot is dropped")
    func replacedEarlyOnlyThatDot() {
        let a = Make.changeSet(device: Make.deviceA, seq: 1, millis: 1_000, rows: [
            RowChange(table: "person", row: Make.row1, writes: [
                FieldWrite(field: "name", value: .text("a")), FieldWrite(field: "phone", value: .text("123")),
            ]),
        ])
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1, 0)])
        for order in [[a, b], [b, a]] {
            let state = Self.state(order)
            #expect(Self.values(state) == [.text("b")])
            #expect(Self.values(state, Self.phoneKey) == [.text("123")])
        }
    }

    @Test("applying a change set twice changes nothing")
    func idempotent() {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, value: .text("b"), replaces: [Self.dot(Make.deviceA, 1)])
        let c = Make.write(device: Make.deviceC, seq: 1, millis: 3_000, value: .text("c"))
        let once = Self.state([a, b, c])
        #expect(Self.state([a, a, b, b, c, c]) == once)
        // A replaced write delivered again must not come back.
        #expect(Self.state([a, b, c, a]) == once)
        #expect(Self.state([b, a, c, b, a]) == once)
        var twice = once
        twice.apply(c)
        #expect(twice == once)
    }

    @Test("clearing a field writes null, which survives as a value")
    func nullSurvives() {
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .text("a"))
        let cleared = Make.write(device: Make.deviceA, seq: 2, millis: 2_000, value: .null, replaces: [Self.dot(Make.deviceA, 1)])
        let state = Self.state([a, cleared])
        #expect(Self.values(state) == [.null])
        // A write replacing the null leaves the new value only.
        let again = Make.write(device: Make.deviceB, seq: 1, millis: 3_000, value: .text("x"), replaces: [Self.dot(Make.deviceA, 2)])
        #expect(Self.values(Self.state([a, cleared, again])) == [.text("x")])
    }

    @Test("fields of different rows and tables are kept apart")
    func keysApart() {
        let changeSet = Make.changeSet(device: Make.deviceA, seq: 1, millis: 1, rows: [
            RowChange(table: "person", row: Make.row1, writes: [FieldWrite(field: "name", value: .text("p1"))]),
            RowChange(table: "person", row: Make.row2, writes: [FieldWrite(field: "name", value: .text("p2"))]),
            RowChange(table: "house", row: Make.row1, writes: [FieldWrite(field: "name", value: .text("h1"))]),
        ])
        let state = Self.state([changeSet])
        #expect(state.fields.count == 3)
        #expect(Self.values(state, .init(table: "person", row: Make.row1, field: "name")) == [.text("p1")])
        #expect(Self.values(state, .init(table: "person", row: Make.row2, field: "name")) == [.text("p2")])
        #expect(Self.values(state, .init(table: "house", row: Make.row1, field: "name")) == [.text("h1")])
        #expect(state.fields[.init(table: "house", row: Make.row1, field: "name")]?.first?.dot.index == 2)
    }

    // MARK: Delivery order

    /// Four change sets: a first write, two concurrent replacements, and a
    /// write that resolves the conflict; plus a second field.
    static let resolvingScenario: [ChangeSet] = [
        Make.changeSet(device: Make.deviceA, seq: 1, millis: 1_000, rows: [
            RowChange(table: "person", row: Make.row1, writes: [
                FieldWrite(field: "name", value: .text("a")), FieldWrite(field: "phone", value: .text("1")),
            ]),
        ]),
        Make.changeSet(device: Make.deviceB, seq: 1, millis: 2_000, rows: [
            RowChange(table: "person", row: Make.row1, writes: [
                FieldWrite(field: "name", value: .text("b"), replaces: [dot(Make.deviceA, 1, 0)]),
                FieldWrite(field: "phone", value: .text("2"), replaces: [dot(Make.deviceA, 1, 1)]),
            ]),
        ]),
        Make.write(device: Make.deviceC, seq: 1, millis: 2_500, value: .text("c"), replaces: [dot(Make.deviceA, 1, 0)]),
        Make.write(device: Make.deviceA, seq: 2, millis: 3_000, value: .text("final"),
                   replaces: [dot(Make.deviceB, 1, 0), dot(Make.deviceC, 1, 0)]),
    ]

    /// Three change sets that end in a conflict on one field and a plain
    /// replacement on another row.
    static let conflictScenario: [ChangeSet] = [
        Make.write(device: Make.deviceA, seq: 1, millis: 1_000, value: .integer(1)),
        Make.changeSet(device: Make.deviceB, seq: 1, millis: 1_000, rows: [
            RowChange(table: "person", row: Make.row1, writes: [FieldWrite(field: "name", value: .integer(2))]),
            RowChange(table: "person", row: Make.row2, writes: [FieldWrite(field: "name", value: .integer(20))]),
        ]),
        Make.changeSet(device: Make.deviceC, seq: 1, millis: 900, rows: [
            RowChange(table: "person", row: Make.row1, writes: [
                FieldWrite(field: "name", value: .integer(3), replaces: [dot(Make.deviceA, 1, 0)]),
            ]),
            RowChange(table: "person", row: Make.row2, writes: [
                FieldWrite(field: "name", value: .integer(30), replaces: [dot(Make.deviceB, 1, 1)]),
            ]),
        ]),
    ]

    @Test("delivery order does not matter: every order of four change sets gives the same state")
    func orderIndependenceResolving() throws {
        let reference = Self.state(Self.resolvingScenario)
        #expect(Self.values(reference) == [.text("final")])
        #expect(Self.values(reference, Self.phoneKey) == [.text("2")])
        #expect(reference.conflicts.isEmpty)
        let orders = permutations(Self.resolvingScenario)
        #expect(orders.count == 24)
        for order in orders {
            let state = Self.state(order)
            #expect(state.fields == reference.fields)
            #expect(state == reference)
        }
    }

    @Test("delivery order does not matter: every order of three change sets keeps the same conflict")
    func orderIndependenceConflict() throws {
        let reference = Self.state(Self.conflictScenario)
        #expect(Self.values(reference) == [.integer(2), .integer(3)])
        #expect(Self.values(reference, .init(table: "person", row: Make.row2, field: "name")) == [.integer(30)])
        #expect(reference.conflicts == [Self.nameKey])
        #expect(MergeRules.shown(reference.fields[Self.nameKey] ?? [])?.value == .integer(2))
        for order in permutations(Self.conflictScenario) {
            let state = Self.state(order)
            #expect(state.fields == reference.fields)
            #expect(state.conflicts == reference.conflicts)
            #expect(state == reference)
        }
    }

    @Test("delivery order and repeats do not matter for histories of honest replicas", arguments: 0..<40 as Range<UInt64>)
    func randomHistories(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let (made, replicas) = HonestHistory.make(random: &random)
        for changeSet in made { try changeSet.validateStructure() }

        let reference = Self.state(made)
        #expect(reference.replacedEarly.isEmpty)
        #expect(reference.applied.count == made.count)
        for replica in replicas {
            // Each replica, given everything it lacks, ends in the same state.
            var full = replica
            for changeSet in made { full.apply(changeSet) }
            #expect(full == reference, "seed \(seed)")
        }
        for _ in 0..<20 {
            var order = made.shuffled(using: &random)
            // Deliver some change sets twice, at random places.
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                order.insert(made.randomElement(using: &random)!, at: Int.random(in: 0...order.count, using: &random))
            }
            let state = Self.state(order)
            #expect(state.fields == reference.fields, "seed \(seed)")
            #expect(state == reference, "seed \(seed)")
        }
    }

    @Test(
        "a write naming a dot of another field as replaced does not make the result depend on delivery order",)
    func replacedDotOfAnotherField() {
        // b's write to name claims to replace a's write to phone.
        let a = Make.write(device: Make.deviceA, seq: 1, millis: 1_000, field: "phone", value: .text("123"))
        let b = Make.write(device: Make.deviceB, seq: 1, millis: 2_000, field: "name", value: .text("b"),
                           replaces: [Self.dot(Make.deviceA, 1, 0)])
        let forwards = Self.state([a, b])
        let backwards = Self.state([b, a])
        #expect(Self.values(forwards, Self.phoneKey) == [.text("123")])
        #expect(forwards.fields == backwards.fields)
    }
}

/// Seeded histories of three replicas that each write what they see and
/// sync partly and at random, the way honest devices do.
enum HonestHistory {
    static let devices = [Make.deviceA, Make.deviceB, Make.deviceC]
    static let rows = [Make.row1, Make.row2, RowID(high: 0x3333, low: 3)]
    static let fields = ["name", "phone", "visits", "_deleted"]

    static func make(random: inout SplitMix64, steps: Int = 30) -> (made: [ChangeSet], replicas: [MemoryFieldState]) {
        var made: [ChangeSet] = []
        var views = [MemoryFieldState](repeating: MemoryFieldState(), count: devices.count)
        var clocks = [HybridLogicalClock](repeating: HybridLogicalClock(), count: devices.count)
        var seqs = [UInt64](repeating: 0, count: devices.count)

        for step in 0..<steps {
            let replica = Int.random(in: 0..<devices.count, using: &random)
            let now = UInt64(1_000 + step * 10) + UInt64.random(in: 0...40, using: &random) // skewed clocks
            // Receive a random part of what has been made so far.
            for changeSet in made where Bool.random(using: &random) {
                views[replica].apply(changeSet)
                try? clocks[replica].observe(changeSet.header.hlc, now: now)
            }
            // Write 1 to 4 fields, replacing what this replica sees.
            var keys = Set<MemoryFieldState.Key>()
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                keys.insert(MemoryFieldState.Key(
                    table: "person", row: rows.randomElement(using: &random)!, field: fields.randomElement(using: &random)!))
            }
            var rowChanges: [RowChange] = []
            for row in rows {
                let writes = keys.filter { $0.row == row }.sorted().map { key in
                    FieldWrite(
                        field: key.field,
                        value: Bool.random(using: &random) ? .integer(Int64(step)) : .text("s\(step)"),
                        replaces: (views[replica].fields[key] ?? []).map(\.dot))
                }
                if !writes.isEmpty { rowChanges.append(RowChange(table: "person", row: row, writes: writes)) }
            }
            seqs[replica] += 1
            let hlc = clocks[replica].tick(now: now)
            let changeSet = ChangeSet(
                header: Make.header(device: devices[replica], seq: seqs[replica], hlc: hlc), rows: rowChanges)
            views[replica].apply(changeSet)
            made.append(changeSet)
        }
        return (made, views)
    }
}
