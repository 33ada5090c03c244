import Foundation
import LinliCore
import LinliProtocol
import LinliStore
import Metrics

/// The conflict desk's side of the sync protocol: the review queue for
/// staff devices (`linli-desk`), over signed requests like every other call.
/// Resolutions from `linli-desk` arrive as ordinary pushes.
extension SyncService {
    /// Throws unless the device is staff: only central staff read the queue.
    func requireStaff(_ access: DeviceAccess) throws(LinliError) {
        guard access.role == .staff else {
            throw LinliError(.notPermitted, "only central staff read the review queue; this device is a \(access.role.rawValue)",
                             hint: "use a device enrolled with --role staff")
        }
    }

    /// The open items matching `filter`, as JSON `{"items": [...]}`.
    public func deskQueue(filter: ReviewFilter, for access: DeviceAccess) throws -> Data {
        try requireStaff(access)
        let items = try storage.reviewQueue(scopes: access.readableScopes, filter: filter, invariants: invariants)
        Counter(label: "linli_desk_queue_reads_total").increment()
        return try Self.json.encode(DeskQueueAnswer(items: items))
    }

    /// One open item with its field's history, or `not_found` when settled.
    public func deskItem(_ id: String, for access: DeviceAccess) throws -> Data {
        try requireStaff(access)
        guard let item = try storage.reviewItem(id, scopes: access.readableScopes, invariants: invariants) else {
            throw LinliError(.notFound, "there is no open item \(id); it may have been resolved", hint: "list the queue again")
        }
        return try Self.json.encode(item)
    }

    static let json: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// The answer of `GET /v1/desk/queue`.
public struct DeskQueueAnswer: Codable, Sendable {
    public var items: [ReviewItem]

    public init(items: [ReviewItem]) { self.items = items }
}

extension ReviewFilter {
    /// The filter from query parameters `grid`, `table`, `kind`, `field`,
    /// `older` (seconds, at most ``Limits/deskOlderSecondsMax``); an unknown
    /// kind or a bad age is refused.
    public init(query: [String: String]) throws(LinliError) {
        self.init()
        grid = query["grid"].flatMap { $0.isEmpty ? nil : $0 }
        table = query["table"].flatMap { $0.isEmpty ? nil : $0 }
        field = query["field"].flatMap { $0.isEmpty ? nil : $0 }
        if let text = query["kind"], !text.isEmpty {
            guard let kind = ReviewKind(rawValue: text) else {
                throw LinliError(.invalidInput, "unknown kind \(text); use \(ReviewKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.kind = kind
        }
        if let text = query["older"], !text.isEmpty {
            guard let seconds = UInt64(text), seconds <= Limits.deskOlderSecondsMax else {
                throw LinliError(.invalidInput, "older must be a whole number of seconds up to deskOlderSecondsMax (\(Limits.deskOlderSecondsMax), ten years), not \(text.prefix(40))",
                                 hint: "ask for items older than a day with older=86400")
            }
            olderThanSeconds = seconds
        }
    }
}
