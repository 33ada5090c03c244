import Foundation
import LinliCore
import LinliStore

/// The conflict desk's calls on the server, for a staff device: the review
/// queue and one item, read over signed requests; resolutions are signed
/// here and sent like any change set.
extension SyncClient {
    /// Sends this device's unsent change sets and pulls nothing: a desk
    /// device needs the district's queue, not the district's records.
    @discardableResult
    public func pushOnly(progress: @Sendable (SyncProgress) -> Void = { _ in }) async throws -> SyncReport {
        try await withTransport { http in
            var report = SyncReport()
            let started = DispatchTime.now().uptimeNanoseconds
            try await push(http, &report, progress)
            report.milliseconds["push"] = elapsedMilliseconds(since: started)
            // A desk holds no one else's records: only its own head counts.
            try await compareHeads(http, &report, progress, ownOnly: true)
            return report
        }
    }

    /// The open review items the filter lets through, oldest first.
    public func reviewQueue(_ filter: ReviewFilter) async throws -> [ReviewItem] {
        var query: [URLQueryItem] = []
        if let grid = filter.grid { query.append(URLQueryItem(name: "grid", value: grid)) }
        if let table = filter.table { query.append(URLQueryItem(name: "table", value: table)) }
        if let kind = filter.kind { query.append(URLQueryItem(name: "kind", value: kind.rawValue)) }
        if let field = filter.field { query.append(URLQueryItem(name: "field", value: field)) }
        if let older = filter.olderThanSeconds { query.append(URLQueryItem(name: "older", value: String(older))) }
        var components = URLComponents()
        components.path = "/v1/desk/queue"
        components.queryItems = query.isEmpty ? nil : query
        let data = try await get(components.percentEncodedPath + (components.percentEncodedQuery.map { "?" + $0 } ?? ""))
        do {
            return try JSONDecoder().decode(DeskQueue.self, from: data).items
        } catch {
            throw LinliError(.malformed, "the server's review queue is not readable: \(error)", hint: "check that the server runs the same version")
        }
    }

    /// One open item with its field's history; `not_found` once settled.
    public func reviewItem(_ id: String) async throws -> ReviewItem {
        guard !id.isEmpty, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) }) else {
            throw LinliError(.invalidInput, "\(id) is not an item id; ids look like c1a2b3c4d5e (letters and digits, from `linli-desk queue`)")
        }
        let data = try await get("/v1/desk/item/\(id)")
        do {
            return try JSONDecoder().decode(ReviewItem.self, from: data)
        } catch {
            throw LinliError(.malformed, "the server's item \(id) is not readable: \(error)", hint: "check that the server runs the same version")
        }
    }

    private func get(_ path: String) async throws -> Data {
        try await withTransport { http in
            var report = SyncReport()
            return try await send(http, "GET", path, body: Data(), report: &report, { _ in }).body
        }
    }

    private struct DeskQueue: Decodable {
        var items: [ReviewItem]
    }
}
