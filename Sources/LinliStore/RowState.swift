import Foundation
import LinliCore

/// The field state of one row: every survivor of every field, as stored in
/// `linli_row_state.state`.
///
/// A row is the unit the merge reads and writes (a change set's writes to
/// a row are merged together, and the row's view is rewritten once), so its
/// survivors are kept together: one read and one write per row instead of
/// one per field. Field and device numbers are this replica's own numbering
/// (`linli_name`, `linli_device`); digests translate them to names and ids.
///
/// Encoding (version 1): one byte `1`, then per survivor: field number,
/// device number, sequence number and index as LEB128 varints, the clock as
/// 8 bytes big-endian, then the value as ``CanonicalEncoding`` writes it.
struct StoredSurvivor: Equatable {
    var fieldN: Int64
    var deviceN: Int64
    var seq: UInt64
    var index: UInt32
    var hlc: UInt64
    var value: Value
}

enum RowStateCodec {
    static let version: UInt8 = 1

    static func encode(_ survivors: [StoredSurvivor]) -> [UInt8] {
        var out: [UInt8] = [version]
        out.reserveCapacity(1 + survivors.count * 32)
        for survivor in survivors {
            appendVarint(UInt64(survivor.fieldN), to: &out)
            appendVarint(UInt64(survivor.deviceN), to: &out)
            appendVarint(survivor.seq, to: &out)
            appendVarint(UInt64(survivor.index), to: &out)
            CanonicalEncoding.append(survivor.hlc, to: &out)
            CanonicalEncoding.append(survivor.value, to: &out)
        }
        return out
    }

    static func decode(_ data: Data) throws(LinliError) -> [StoredSurvivor] {
        var survivors: [StoredSurvivor] = []
        let result: Result<Void, LinliError> = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var reader = Reader(bytes: bytes)
            guard reader.byte() == version else {
                return .failure(LinliError(.storage, "a row state has an unknown encoding; run a rebuild"))
            }
            while !reader.atEnd {
                guard let fieldN = reader.varint(), let deviceN = reader.varint(), let seq = reader.varint(),
                      let index = reader.varint(), let hlc = reader.uint64(), let value = reader.value() else {
                    return .failure(LinliError(.storage, "a row state is truncated; run a rebuild"))
                }
                survivors.append(StoredSurvivor(
                    fieldN: Int64(fieldN), deviceN: Int64(deviceN), seq: seq, index: UInt32(truncatingIfNeeded: index), hlc: hlc, value: value))
            }
            return .success(())
        }
        try result.get()
        return survivors
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var offset = 0

        var atEnd: Bool { offset >= bytes.count }

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = byte() {
                result |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return result }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }

        mutating func uint64() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            var value: UInt64 = 0
            for _ in 0..<8 { value = value << 8 | UInt64(bytes[offset]); offset += 1 }
            return value
        }

        mutating func uint32() -> UInt32? {
            guard offset + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 { value = value << 8 | UInt32(bytes[offset]); offset += 1 }
            return value
        }

        mutating func slice() -> UnsafeBufferPointer<UInt8>? {
            guard let count = uint32().map(Int.init), offset + count <= bytes.count else { return nil }
            defer { offset += count }
            return UnsafeBufferPointer(rebasing: bytes[offset..<offset + count])
        }

        mutating func value() -> Value? {
            guard let tag = byte() else { return nil }
            switch tag {
            case 0: return .null
            case 1: return uint64().map { .integer(Int64(bitPattern: $0)) }
            case 2: return uint64().map { .real(Double(bitPattern: $0)) }
            case 3: return slice().map { .text(String(decoding: $0, as: UTF8.self)) }
            case 4: return slice().map { .bytes(Data($0)) }
            case 5: return byte().map { .boolean($0 != 0) }
            default: return nil
            }
        }
    }
}
