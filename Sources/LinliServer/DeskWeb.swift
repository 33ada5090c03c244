import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import Logging
import Metrics
import Mustache
import NIOCore
import Synchronization

/// The staff's conflict desk as web pages on the sync server, under `/desk`.
///
/// | method and path | what it does |
/// | --- | --- |
/// | `GET /desk` | the login form (or, when logged in, to the queue) |
/// | `POST /desk/login` | checks user name and password, opens a session |
/// | `POST /desk/logout` | ends the session |
/// | `GET /desk/queue?grid=&table=&kind=&older_hours=` | the review queue, filtered |
/// | `GET /desk/item/ID` | one item: the competing values, the refusal or the broken rule, the field's history |
/// | `POST /desk/item/ID/resolve` | resolves it, signed by the logged-in staff member |
/// | `GET /desk/bulk?grid=&table=&field=` | open conflicts by field; a preview of "newest wins" for one |
/// | `POST /desk/bulk` | resolves the previewed conflicts with "newest wins" |
///
/// A staff member's account (``DeskAccount``, made by `linli-admin desk
/// add`) is a device with a staff certificate whose key is sealed under the
/// password. The login unseals it into the session, in memory only; the
/// resolutions are signed with it, as that device, like any change set.
/// The accounts file is read at every login, so new accounts work at once.
///
/// Sessions: a random 32-byte token in an HttpOnly, SameSite=Strict cookie
/// limited to `/desk`; the server keeps only its BLAKE2b hash. A session
/// ends at logout, after ``Limits/deskSessionIdleSecondsMax`` idle, or when
/// its device's certificate is revoked (checked at every request). Every
/// form carries the session's CSRF token; the login form a token of its own
/// in a cookie (double submit). A user name with failed logins from a client
/// address waits before the next try from there
/// (``Limits/deskLoginFailuresFree``), and so does an address with many
/// failures over all names (``Limits/deskLoginFailuresPerAddressFree``).
/// Expired sessions are ended at least every
/// ``Limits/deskSessionSweepSecondsMax``, with their unsealed keys.
public final class DeskWeb: Sendable {
    let service: SyncService
    let schema: Schema
    let accountsPath: String
    let secureCookies: Bool
    /// Whether the client's address is the last of `X-Forwarded-For` (set
    /// by the proxy in front) rather than the connection's peer.
    let trustProxy: Bool
    let logger: Logger
    let clock: @Sendable () -> UInt64
    let sessions: DeskSessions
    let throttle = DeskLoginThrottle()
    /// One resolution at a time: an item is read again and resolved under
    /// this lock, so two staff members cannot settle it twice.
    let resolving = NSLock()
    let pages: DeskPages
    /// Ends expired sessions even when no request comes.
    let sweeper: Task<Void, Never>
    let warnedForwarded = Mutex(false)

    static let sessionCookie = "linli_desk"
    static let loginCookie = "linli_desk_login"

    /// `schema` is the server store's (for typed values); `secureCookies`
    /// marks the cookies Secure, for when TLS ends in front of the server;
    /// `trustProxy` takes the client's address from the proxy's
    /// `X-Forwarded-For` (only for a server reached through the proxy alone).
    public init(service: SyncService, schema: Schema, accountsPath: String, secureCookies: Bool = false, trustProxy: Bool = false,
                logger: Logger, clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) throws {
        self.service = service
        self.schema = schema
        self.accountsPath = accountsPath
        self.secureCookies = secureCookies
        self.trustProxy = trustProxy
        self.logger = logger
        self.clock = clock
        pages = try DeskPages()
        let sessions = DeskSessions()
        self.sessions = sessions
        sweeper = Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: Limits.deskSessionSweepSecondsMax * 1_000_000_000)
                await sessions.sweep(now: clock())
            }
        }
        // Made now, so the first login of an unknown name is not the one
        // that takes longer.
        _ = DeskUnlock.decoy
        if !FileManager.default.fileExists(atPath: accountsPath) {
            logger.warning("desk accounts file not there yet; nobody can log in until `linli-admin desk add` writes it",
                           metadata: ["path": "\(accountsPath)"])
        }
    }

    deinit { sweeper.cancel() }

    var storage: any SyncStorage { service.storage }

    /// Adds the desk's routes to `router`.
    public func mount(on router: Router<BasicRequestContext>) {
        // Someone who types the server's address into a browser finds the desk.
        router.get("/") { _, _ in self.redirect("/desk") }
        router.get("/desk") { request, _ in await self.handle(request) { try await self.loginPage(request) } }
        router.post("/desk/login") { request, _ in await self.handle(request) { try await self.login(request) } }
        router.post("/desk/logout") { request, _ in await self.handle(request) { try await self.logout(request) } }
        router.get("/desk/queue") { request, _ in await self.handle(request) { try await self.queuePage(request) } }
        router.get("/desk/item/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            return await self.handle(request) { try await self.itemPage(request, id: id) }
        }
        router.post("/desk/item/:id/resolve") { request, context in
            let id = context.parameters.get("id") ?? ""
            return await self.handle(request) { try await self.resolveItem(request, id: id) }
        }
        router.get("/desk/bulk") { request, _ in await self.handle(request) { try await self.bulkPage(request) } }
        router.post("/desk/bulk") { request, _ in await self.handle(request) { try await self.bulkApply(request) } }
    }

    // MARK: - Logging in and out

    func loginPage(_ request: Request, status: HTTPResponse.Status = .ok, error: String? = nil, flash: String? = nil,
                   userName: String? = nil) async throws -> Response {
        if status == .ok, error == nil, await current(request) != nil { return redirect("/desk/queue") }
        let token = Self.randomToken(16)
        var context: [String: Any] = ["loginToken": token]
        if let userName { context["userName"] = userName }
        var flash = flash
        if flash == nil, request.uri.queryParameters["bye"] != nil { flash = "已退出。 · You are logged out." }
        var response = html(pages.render(pages.login, context, title: "登录 · Log in", flash: flash, error: error), status: status)
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.loginCookie, token, maxAge: 3600)))
        return response
    }

    func login(_ request: Request) async throws -> Response {
        let form = try await DeskForm(request)
        let user = (form["user"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let password = form["password"] ?? ""
        guard let sent = form["login_csrf"], let expected = request.cookies[Self.loginCookie]?.value,
              ConstantTime.equal(Data(sent.utf8), Data(expected.utf8)) else {
            return try await loginPage(request, status: .forbidden, error: "登录表单已过期，请再试一次。 · The login form had expired; please try again.",
                                       userName: user)
        }
        guard !user.isEmpty, !password.isEmpty else {
            return try await loginPage(request, status: .badRequest, error: "请填写用户名和密码。 · Enter your user name and your password.",
                                       userName: user)
        }
        let address = ClientAddress.of(request, trustProxy: trustProxy)
        if !trustProxy, ClientAddress.isForwarded(request), !warnedForwarded.withLock({ let was = $0; $0 = true; return was }) {
            logger.warning("desk logins arrive through a proxy (X-Forwarded-For) the server does not trust: all count as from one address; behind the shipped nginx configuration, add --desk-trust-proxy",
                           metadata: ["peer": "\(address)"])
        }
        // Admitted and reserved in one step: tries sent together cannot all
        // pass a wait that the first one's failure is about to start.
        let ticket: DeskLoginThrottle.Ticket
        switch await throttle.admit(user: user, address: address, now: clock()) {
        case .check(let admitted):
            ticket = admitted
        case .wait(let wait, let reason):
            Counter(label: "linli_desk_logins_total", dimensions: [("result", "throttled")]).increment()
            let error = switch reason {
            case .name: "这个用户名登录失败次数过多，请 \(wait) 秒后再试。 · Too many failed logins for this user name; try again in \(wait) seconds."
            case .address: "从您的网络地址登录失败次数过多，请 \(wait) 秒后再试。 · Too many failed logins from your network address; try again in \(wait) seconds."
            case .checking: "这个用户名的另一次登录正在验证，请稍后再试。 · Another login of this user name from your address is being checked; try again in a moment."
            }
            var response = try await loginPage(request, status: .tooManyRequests, error: error, userName: user)
            response.headers[.retryAfter] = String(wait)
            return response
        case .busy:
            var response = try await loginPage(
                request, status: .serviceUnavailable,
                error: "同时登录的人太多，请稍后再试。 · Too many logins at once; try again in a moment.", userName: user)
            response.headers[.retryAfter] = "2"
            return response
        }
        let outcome: DeskUnlock
        do {
            let path = accountsPath
            outcome = try await offload { try DeskUnlock.attempt(user: user, password: password, accountsPath: path) }
        } catch {
            await throttle.finish(ticket, .undecided, now: clock())
            throw error
        }
        guard case .unlocked(let account, let device, let key) = outcome else {
            let failures = await throttle.finish(ticket, .failed, now: clock())
            Counter(label: "linli_desk_logins_total", dimensions: [("result", "refused")]).increment()
            logger.notice("desk login refused", metadata: ["user": "\(user)", "failures": "\(failures)", "address": "\(address)"])
            return try await loginPage(request, status: .unauthorized,
                                       error: "用户名或密码不对。 · The user name or the password is wrong.", userName: user)
        }
        await throttle.finish(ticket, .succeeded, now: clock())
        // The password was right; now the device must be staff on this server.
        let identity = DeviceIdentity(device: device, key: key, user: account.user)
        if let refusal = try await staffRefusal(identity) {
            Counter(label: "linli_desk_logins_total", dimensions: [("result", "not_staff")]).increment()
            logger.notice("desk login of a device that is not staff here", metadata: ["user": "\(account.user)", "device": "\(device.hex)"])
            return try await loginPage(request, status: .forbidden, error: refusal, userName: user)
        }
        let token = await sessions.open(identity: identity, now: clock())
        Counter(label: "linli_desk_logins_total", dimensions: [("result", "ok")]).increment()
        logger.info("desk login", metadata: ["user": "\(account.user)", "device": "\(device.hex)"])
        var response = redirect("/desk/queue")
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, token, maxAge: nil)))
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.loginCookie, "", maxAge: 0)))
        return response
    }

    func logout(_ request: Request) async throws -> Response {
        let (token, session) = try await authenticated(request, post: true)
        let form = try await DeskForm(request)
        try checkCSRF(form, session)
        await sessions.close(token: token)
        logger.info("desk logout", metadata: ["user": "\(session.identity.user)"])
        var response = redirect("/desk?bye=1")
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, "", maxAge: 0)))
        return response
    }

    /// Why `identity` may not work at the desk now, or nil when it may: its
    /// device needs a current staff certificate for this very key.
    func staffRefusal(_ identity: DeviceIdentity) async throws -> String? {
        let storage = self.storage
        let device = identity.device
        do {
            let access = try await offload { try storage.access(device) }
            guard access.role == .staff else {
                return "\(identity.user) 的设备是\(access.role.rawValue)，不是工作人员；处理台只供街道工作人员使用。 · The device of \(identity.user) is certified as \(access.role.rawValue), not staff; the desk is for central staff only."
            }
            guard access.key == identity.key.publicKey else {
                return "\(identity.user) 的账户密钥不是服务器上登记的密钥（可能已轮换）；请管理员重新建立账户。 · The key of \(identity.user)'s desk account is not the key certified for its device (was it rotated?); ask the administrator for a new desk account."
            }
            return nil
        } catch let error as LinliError where error.code == .unknownDevice {
            return "\(identity.user) 的设备在服务器上还没有证书；请管理员运行 linli-admin sync。 · The device of \(identity.user) has no certificate on this server yet; the administrator runs `linli-admin sync`."
        } catch let error as LinliError where error.code == .revoked {
            return "\(identity.user) 的设备已被吊销，不能再登录。 · The device of \(identity.user) was revoked; it can no longer log in. Ask the administrator for a new desk account."
        }
    }

    // MARK: - Sessions

    struct Refused: Error {
        let response: Response
    }

    /// The session of the request's cookie, if it is open.
    func current(_ request: Request) async -> (token: String, session: DeskSession)? {
        guard let token = request.cookies[Self.sessionCookie]?.value, !token.isEmpty,
              let session = await sessions.find(token: token, now: clock()) else { return nil }
        return (token, session)
    }

    /// The request's open session of a staff member who is still staff;
    /// otherwise the answer to give: the login page (to it for a page, 401
    /// for a form), or 403 when the certificate went away meanwhile.
    func authenticated(_ request: Request, post: Bool = false) async throws -> (token: String, session: DeskSession) {
        guard let found = await current(request) else {
            if !post { throw Refused(response: redirect("/desk")) }
            var response = try await loginPage(
                request, status: .unauthorized,
                error: "您的登录已结束（已退出或闲置超过 \(Limits.deskSessionIdleSecondsMax / 60) 分钟），请重新登录；未作任何处理。 · Your session has ended (logged out, or idle for \(Limits.deskSessionIdleSecondsMax / 60) minutes); log in again. Nothing was resolved.")
            response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, "", maxAge: 0)))
            throw Refused(response: response)
        }
        if let refusal = try await staffRefusal(found.session.identity) {
            await sessions.close(token: found.token)
            logger.notice("desk session ended: not staff any more", metadata: ["user": "\(found.session.identity.user)"])
            var response = try await loginPage(request, status: .forbidden, error: refusal)
            response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, "", maxAge: 0)))
            throw Refused(response: response)
        }
        return found
    }

    func checkCSRF(_ form: DeskForm, _ session: DeskSession) throws {
        guard let sent = form["csrf"], ConstantTime.equal(Data(sent.utf8), Data(session.csrf.utf8)) else {
            logger.notice("desk form without its CSRF token", metadata: ["user": "\(session.identity.user)"])
            let page = pages.render(pages.message, [
                "heading": "表单无效 · The form is not valid",
                "text": "这个表单缺少安全令牌，或来自已结束的登录。请回到页面重新提交；未作任何处理。 · The form lacks its security token, or comes from a session that has ended. Go back, reload the page and submit again; nothing was resolved.",
                "link": "/desk/queue", "linkText": "返回待处理 · Back to the queue",
            ], title: "表单无效 · Form not valid", session: session)
            throw Refused(response: html(page, status: .forbidden))
        }
    }

    // MARK: - The queue

    func queuePage(_ request: Request) async throws -> Response {
        let (token, session) = try await authenticated(request)
        let query = Self.query(request)
        var filter = ReviewFilter()
        var problems: [String] = []
        filter.grid = query["grid"].flatMap { $0.isEmpty ? nil : $0 }
        filter.table = query["table"].flatMap { $0.isEmpty ? nil : $0 }
        if let kind = query["kind"], !kind.isEmpty {
            if let parsed = ReviewKind(rawValue: kind) { filter.kind = parsed } else {
                problems.append("没有类别 \(kind) · There is no kind \(kind); choose one from the list.")
            }
        }
        if let hours = query["older_hours"], !hours.isEmpty {
            let hoursMax = Limits.deskOlderSecondsMax / 3600
            if let parsed = UInt64(hours), parsed <= hoursMax { filter.olderThanSeconds = parsed * 3600 } else {
                problems.append("等待时间须为不超过 \(hoursMax) 的小时数（整数） · The age must be a whole number of hours up to \(hoursMax) (ten years), not \(hours.prefix(40)).")
            }
        }
        let all = try await allItems()
        let now = clock()
        let items = all.filter { filter.matches($0, now: now) }
        let shown = items.prefix(Limits.deskQueueRowsMax)
        let grids = Set(all.compactMap(\.grid)).union(filter.grid.map { [$0] } ?? []).sorted()
        let tables = Set(all.compactMap(\.table)).union(filter.table.map { [$0] } ?? []).sorted()
        var bulkQuery: [String] = []
        if let grid = filter.grid { bulkQuery.append("grid=" + Self.queryEscaped(grid)) }
        if let table = filter.table { bulkQuery.append("table=" + Self.queryEscaped(table)) }
        let context: [String: Any] = [
            "grids": grids.map { ["value": $0, "selected": $0 == filter.grid] },
            "tables": tables.map { ["value": $0, "label": tableLabel($0), "selected": $0 == filter.table] },
            "kinds": ReviewKind.allCases.map { ["value": $0.rawValue, "label": Self.kindLabel($0), "selected": $0 == filter.kind] },
            "olderHours": filter.olderThanSeconds.map { String($0 / 3600) } ?? "",
            "count": items.count, "shown": shown.count, "truncated": items.count > shown.count,
            "hasItems": !shown.isEmpty,
            "items": shown.map { queueRow($0, now: now) },
            "bulkQuery": bulkQuery.isEmpty ? "" : "?" + bulkQuery.joined(separator: "&"),
        ]
        let flash = await sessions.takeFlash(token: token)
        return html(pages.render(pages.queue, context, title: "待处理 · Review queue", session: session, flash: flash,
                                 error: problems.isEmpty ? nil : problems.joined(separator: " ")),
                    status: problems.isEmpty ? .ok : .badRequest)
    }

    func allItems(filter: ReviewFilter = ReviewFilter()) async throws -> [ReviewItem] {
        let storage = self.storage
        let invariants = service.invariants
        return try await offload { try storage.reviewQueue(scopes: nil, filter: filter, invariants: invariants) }
    }

    func queueRow(_ item: ReviewItem, now: UInt64) -> [String: Any] {
        var row: [String: Any] = [
            "id": item.id, "kind": item.kind.rawValue, "kindLabel": Self.kindLabel(item.kind),
            "grid": item.grid ?? "—", "table": item.table.map(tableLabel) ?? "—",
            "record": item.row.map { String($0.prefix(8)) } ?? "—",
            "field": fieldLabel(item.table, item.field) ?? "—",
            "age": Self.age(now >= item.detectedAt ? now - item.detectedAt : 0),
        ]
        // A conflict's line names the values, personal ones masked: the
        // list is for finding, the item page for judging.
        if item.kind == .conflict || item.kind == .deleteVersusEdit, let field = item.field {
            let schemaField = item.table.flatMap { schema.table($0)?.field(field) }
            row["summary"] = "\(fieldLabel(item.table, item.field) ?? field): " + item.values.map { value in
                let text = value.value.isNull ? "（空 · empty）" : DeskFieldText.show(value.value, field: schemaField, masked: true)
                return "\(text)（\(value.user)）"
            }.joined(separator: " / ")
        } else {
            row["summary"] = item.summary
        }
        return row
    }

    // MARK: - One item

    func itemPage(_ request: Request, id: String) async throws -> Response {
        let (token, session) = try await authenticated(request)
        guard let item = try await loadItem(id) else {
            let page = pages.render(pages.message, [
                "heading": "没有这个待处理项目 · No such open item",
                "text": "项目 \(id) 已不在待处理中：可能已被其他人处理。 · Item \(id) is not open: it may have been resolved by someone else.",
                "link": "/desk/queue", "linkText": "返回待处理 · Back to the queue",
            ], title: "没有这个项目 · No such item", session: session)
            return html(page, status: .notFound)
        }
        // Personal data is shown in full here, for judging; say who looked.
        logger.info("desk item opened", metadata: ["user": "\(session.identity.user)", "item": "\(id)"])
        let flash = await sessions.takeFlash(token: token)
        return html(renderItem(item, session: session, flash: flash))
    }

    func loadItem(_ id: String) async throws -> ReviewItem? {
        guard id.count <= 64, id.allSatisfy({ $0.isLetter || $0.isNumber }) else { return nil }
        let storage = self.storage
        let invariants = service.invariants
        return try await offload { try storage.reviewItem(id, scopes: nil, invariants: invariants) }
    }

    /// What the staff member saw, to tell whether the item changed since:
    /// a hash of the item without its history.
    static func version(_ item: ReviewItem) -> String {
        var bare = item
        bare.history = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(bare)) ?? Data(item.id.utf8)
        return Hex.encode(Blake2b256.hash(data).prefix(12))
    }

    /// What the form sent back, to show it again with an error.
    struct Entered {
        var note = ""
        var choice: String?
        var corrected = ""
        var target: String?
        var value = ""
        var fixes: [String: String] = [:]
    }

    func renderItem(_ item: ReviewItem, session: DeskSession, flash: String? = nil, error: String? = nil,
                    entered: Entered = Entered()) -> String {
        let table = item.table.flatMap { schema.table($0) }
        let field = item.field.flatMap { table?.field($0) }
        var context: [String: Any] = [
            "id": item.id, "kind": item.kind.rawValue, "kindLabel": Self.kindLabel(item.kind),
            "grid": item.grid ?? "—", "scope": item.scope, "detected": Self.time(item.detectedAt),
            "csrf": session.csrf, "version": Self.version(item), "noteMax": Limits.deskNoteBytesMax, "note": entered.note,
        ]
        if let name = item.table { context["table"] = tableLabel(name) }
        if let row = item.row { context["record"] = row }
        if let name = fieldLabel(item.table, item.field) { context["field"] = name }
        var heading = [item.table.map(tableLabel), fieldLabel(item.table, item.field)].compactMap { $0 }.joined(separator: " · ")
        switch item.kind {
        case .conflict, .deleteVersusEdit:
            var conflict: [String: Any] = [
                "values": item.values.enumerated().map { index, value -> [String: Any] in
                    [
                        "index": index, "number": index + 1, "shown": value.shown,
                        "text": value.value.isNull ? (item.kind == .deleteVersusEdit ? "（空：记录删除 · empty: the record deleted）" : "（空 · empty）")
                            : DeskFieldText.show(value.value, field: field, masked: false),
                        "user": value.user, "device": String(value.dot.device.prefix(8)), "time": Self.time(value.time),
                        "checked": entered.choice == String(index),
                    ]
                },
                "typeHint": field.map(DeskFieldText.typeHint) ?? "文本 · text",
                "corrected": entered.corrected, "correctedChecked": entered.choice == "corrected",
            ]
            if item.kind == .deleteVersusEdit {
                conflict["deleteVersusEdit"] = true
                conflict["deletion"] = item.deletion.filter { $0.value.boolean == true }.map {
                    ["user": $0.user, "device": String($0.dot.device.prefix(8)), "time": Self.time($0.time)]
                }
            }
            context["conflict"] = conflict
        case .refused:
            if let refusal = item.refusal {
                var fieldNames: [String] = []
                var fieldTables: [String: String] = [:]
                for write in refusal.writes where !fieldNames.contains(write.field) && !write.field.hasPrefix("_") {
                    fieldNames.append(write.field)
                    fieldTables[write.field] = write.table
                }
                let scope = Scope(item.scope)
                // A refused deletion is dismissed, never carried out by a click.
                let deletes = refusal.writes.contains { $0.field == MergeRules.deletedField && $0.value == .boolean(true) }
                context["refused"] = [
                    "code": refusal.code, "message": refusal.message, "author": refusal.user ?? "—",
                    "device": refusal.device ?? "—", "seq": refusal.seq.map(String.init) ?? "—", "received": Self.time(refusal.receivedAt),
                    "writes": refusal.writes.map { write -> [String: Any] in
                        let schemaField = schema.table(write.table)?.field(write.field)
                        return ["table": tableLabel(write.table), "record": String(write.row.prefix(8)),
                                "field": fieldLabel(write.table, write.field) ?? write.field,
                                "text": write.value.isNull ? "（空 · empty）" : DeskFieldText.show(write.value, field: schemaField, masked: false)]
                    },
                    "canResubmit": !refusal.writes.isEmpty && scope != nil && scope != .system && !deletes,
                    "deletes": deletes,
                    "fields": fieldNames.enumerated().map { index, name -> [String: Any] in
                        let tableName = fieldTables[name] ?? ""
                        let schemaField = schema.table(tableName)?.field(name)
                        let original = refusal.writes.first { $0.field == name }?.value ?? .null
                        return ["index": index, "name": name, "label": fieldLabel(tableName, name) ?? name,
                                "typeHint": schemaField.map(DeskFieldText.typeHint) ?? "文本 · text",
                                "text": entered.fixes[name] ?? DeskFieldText.edit(original, field: schemaField)]
                    },
                ] as [String: Any]
                heading = "\(refusal.user ?? "?") · \(refusal.code)"
            }
        case .invariant:
            var rows: [[String: Any]] = []
            var targets: [[String: Any]] = []
            for record in item.records {
                for (name, values) in record.fields.sorted(by: { $0.key < $1.key }) {
                    let schemaField = schema.table(record.table)?.field(name)
                    let shown = values.map { value in
                        (value.value.isNull ? "（空 · empty）" : DeskFieldText.show(value.value, field: schemaField, masked: false)) + "（\(value.user)）"
                    }.joined(separator: " / ")
                    rows.append(["table": tableLabel(record.table), "record": String(record.row.prefix(8)), "scope": record.scope,
                                 "field": fieldLabel(record.table, name) ?? name, "values": shown.isEmpty ? "（空 · empty）" : shown])
                    let key = "\(record.table)|\(record.row)|\(name)"
                    targets.append(["value": key, "selected": key == entered.target,
                                    "label": "\(tableLabel(record.table)) \(record.row.prefix(8)) · \(fieldLabel(record.table, name) ?? name)（现为 now: \(record.shown(name).isNull ? "空 empty" : DeskFieldText.show(record.shown(name), field: schemaField, masked: false))）"])
                }
            }
            context["invariant"] = ["explanation": item.explanation ?? item.invariant ?? "", "rows": rows, "targets": targets,
                                    "value": entered.value] as [String: Any]
            heading = item.explanation ?? heading
        }
        context["heading"] = heading
        if !item.history.isEmpty {
            context["hasHistory"] = true
            context["history"] = item.history.map { entry -> [String: Any] in
                ["time": Self.time(entry.time), "user": entry.user, "device": String(entry.dot.device.prefix(8)),
                 "text": entry.value.isNull ? "（空 · empty）" : DeskFieldText.show(entry.value, field: field, masked: false),
                 "replaced": entry.replaced, "survives": entry.survives]
            }
        }
        return pages.render(pages.item, context, title: "\(Self.kindLabel(item.kind)) \(item.id)", session: session, flash: flash, error: error)
    }

    // MARK: - Resolving one item

    func resolveItem(_ request: Request, id: String) async throws -> Response {
        let (token, session) = try await authenticated(request, post: true)
        let form = try await DeskForm(request)
        try checkCSRF(form, session)
        var entered = Entered()
        entered.note = form["note"] ?? ""
        entered.choice = form["choice"]
        entered.corrected = form["corrected"] ?? ""
        entered.target = form["target"]
        entered.value = form["value"] ?? ""
        for (name, text) in form.values where name.hasPrefix("fix.") { entered.fixes[String(name.dropFirst(4))] = text }

        guard let item = try await loadItem(id) else {
            await sessions.setFlash(token: token, "项目 \(id) 已不在待处理中：可能已被其他人处理，未作更改。 · Item \(id) is no longer open: it may have been resolved by someone else. Nothing was changed.")
            return redirect("/desk/queue")
        }
        func again(_ message: String, status: HTTPResponse.Status = .badRequest) -> Response {
            html(renderItem(item, session: session, error: message, entered: entered), status: status)
        }
        guard form["version"] == Self.version(item) else {
            return again("这个项目在您打开之后有了变化（可能有新的值到达，或被其他人处理了一部分）。请看一下现在的内容再决定。 · This item changed after you opened it (a new value arrived, or someone settled part of it). Look at it as it is now, then decide again. Nothing was changed.",
                         status: .conflict)
        }
        let note = entered.note.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !note.isEmpty else { return again("请写下说明：为什么这样处理。 · Write a note saying why.") }
        guard note.utf8.count <= Limits.deskNoteBytesMax else {
            return again("说明太长：最多 \(Limits.deskNoteBytesMax) 字节。 · The note is too long: at most \(Limits.deskNoteBytesMax) bytes.")
        }
        let action: ReviewAction
        do {
            action = try self.action(for: item, form: form, entered: entered)
        } catch let error as LinliError {
            return again(error.message + (error.hint.map { " " + $0 } ?? ""))
        }
        let storage = self.storage
        let invariants = service.invariants
        let identity = session.identity
        let expected = Self.version(item)
        let outcome: ResolveOutcome
        do {
            outcome = try await offload { [resolving] in
                try resolving.withLock {
                    // Read again under the lock: another staff member may
                    // have settled it a moment ago.
                    guard let fresh = try storage.reviewItem(id, scopes: nil, invariants: invariants) else { return .vanished }
                    guard Self.version(fresh) == expected else { return .changed }
                    _ = try storage.resolve([(fresh, action)], note: note, as: identity)
                    self.service.reviewWatch.merged()
                    return .resolved
                }
            }
        } catch let error as LinliError where error.code == .invalidInput || error.code == .schemaViolation || error.code == .notPermitted {
            return again(error.message + (error.hint.map { " " + $0 } ?? ""))
        }
        switch outcome {
        case .vanished:
            await sessions.setFlash(token: token, "项目 \(id) 已不在待处理中：可能已被其他人处理，未作更改。 · Item \(id) is no longer open: it may have been resolved by someone else. Nothing was changed.")
            return redirect("/desk/queue")
        case .changed:
            return again("这个项目刚刚有了变化。请看一下现在的内容再决定；未作更改。 · This item changed a moment ago. Look at it as it is now, then decide again; nothing was changed.",
                         status: .conflict)
        case .resolved:
            Counter(label: "linli_desk_resolutions_total", dimensions: [("kind", item.kind.rawValue)]).increment()
            logger.info("desk resolution", metadata: ["user": "\(identity.user)", "device": "\(identity.device.hex)", "item": "\(id)",
                                                      "action": "\(Self.actionName(action))"])
            await sessions.setFlash(token: token, "已处理 \(Self.kindLabel(item.kind)) \(id)，已签名并记录。 · Resolved \(id); signed as \(identity.user) and recorded.")
            return redirect("/desk/queue")
        }
    }

    enum ResolveOutcome: Sendable {
        case resolved, vanished, changed
    }

    static func actionName(_ action: ReviewAction) -> String {
        switch action {
        case .choose(let index): "choose value \(index + 1)"
        case .correct: "correct"
        case .newest: "newest"
        case .dismiss: "dismiss"
        case .resubmit(let fields): "resubmit (\(fields.count) corrected)"
        case .edit(let table, let row, let field, _): "edit \(table) \(row.prefix(8)) \(field)"
        }
    }

    /// The decision the form states, with typed values parsed.
    func action(for item: ReviewItem, form: DeskForm, entered: Entered) throws -> ReviewAction {
        switch (item.kind, form["action"] ?? "") {
        case (.conflict, "choose"), (.deleteVersusEdit, "choose"):
            let corrected = entered.corrected.trimmingCharacters(in: .whitespaces)
            switch entered.choice {
            case nil, "":
                throw LinliError(.invalidInput, "请选择一个值，或输入更正值。 · Choose one of the values, or enter a corrected value.")
            case "corrected":
                guard !corrected.isEmpty else {
                    throw LinliError(.invalidInput, "您选了“更正值”，但没有输入。 · You chose a corrected value but did not enter one.")
                }
                guard let tableName = item.table, let fieldName = item.field, let table = schema.table(tableName), let field = table.field(fieldName) else {
                    throw LinliError(.invalidInput, "服务器的表结构里没有这个字段，只能选择其中一个值。 · This server's schema does not declare \(item.table ?? "?").\(item.field ?? "?"); choose one of the values instead.")
                }
                return .correct(try DeskFieldText.parse(corrected, field: field, table: table))
            case let text?:
                guard let index = Int(text), item.values.indices.contains(index) else {
                    throw LinliError(.invalidInput, "没有这个值。 · There is no value \(text); choose one of the values shown.")
                }
                guard corrected.isEmpty else {
                    throw LinliError(.invalidInput, "您选了值 \(index + 1)，又输入了更正值；请只保留一个。 · You chose value \(index + 1) and also typed a corrected value; clear the one you do not mean.")
                }
                return .choose(index)
            }
        case (.refused, "dismiss"):
            return .dismiss
        case (.refused, "resubmit"):
            guard let refusal = item.refusal else { throw LinliError(.invalidInput, "this item is not a refused change set") }
            var corrections: [String: Value] = [:]
            for (name, text) in entered.fixes {
                guard let write = refusal.writes.first(where: { $0.field == name }) else {
                    throw LinliError(.invalidInput, "the refused change set writes no field \(name)")
                }
                let field = schema.table(write.table)?.field(name)
                // Only what the staff member changed counts as a correction.
                if text == DeskFieldText.edit(write.value, field: field) { continue }
                guard let table = schema.table(write.table), let field else {
                    throw LinliError(.invalidInput, "服务器的表结构里没有 \(write.table).\(name)，不能更正它。 · This server's schema does not declare \(write.table).\(name); it cannot be corrected here.")
                }
                corrections[name] = try DeskFieldText.parse(text, field: field, table: table)
            }
            return .resubmit(corrections)
        case (.invariant, "edit"):
            let parts = (entered.target ?? "").split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, item.records.contains(where: { $0.table == parts[0] && $0.row == parts[1] && $0.fields[parts[2]] != nil }) else {
                throw LinliError(.invalidInput, "请从列表中选择一条记录和字段。 · Choose a record and a field from the list.")
            }
            guard let table = schema.table(parts[0]), let field = table.field(parts[2]) else {
                throw LinliError(.invalidInput, "This server's schema does not declare \(parts[0]).\(parts[2]).")
            }
            return .edit(table: parts[0], row: parts[1], field: parts[2], value: try DeskFieldText.parse(entered.value, field: field, table: table))
        default:
            throw LinliError(.invalidInput, "这个表单不适用于此类项目；请重新打开项目。 · This form does not fit a \(item.kind.rawValue) item; open the item again.")
        }
    }

    // MARK: - Bulk

    func bulkPage(_ request: Request) async throws -> Response {
        let (token, session) = try await authenticated(request)
        let query = Self.query(request)
        let grid = query["grid"].flatMap { $0.isEmpty ? nil : $0 }
        let table = query["table"].flatMap { $0.isEmpty ? nil : $0 }
        let field = query["field"].flatMap { $0.isEmpty ? nil : $0 }
        let flash = await sessions.takeFlash(token: token)
        guard let grid, let table, let field else {
            // Choose a group: open conflicts counted by grid, table and field.
            let items = try await allItems(filter: ReviewFilter(grid: grid, table: table, kind: .conflict))
            var counts: [String: (grid: String, table: String, field: String, count: Int)] = [:]
            for item in items {
                guard let itemGrid = item.grid, let itemTable = item.table, let itemField = item.field else { continue }
                let key = [itemGrid, itemTable, itemField].joined(separator: "\u{1F}")
                counts[key, default: (itemGrid, itemTable, itemField, 0)].count += 1
            }
            let groups = counts.values.sorted { ($0.grid, $0.table, $0.field) < ($1.grid, $1.table, $1.field) }.map { group -> [String: Any] in
                ["grid": group.grid, "tableLabel": tableLabel(group.table), "fieldLabel": fieldLabel(group.table, group.field) ?? group.field,
                 "count": group.count, "gridQuery": Self.queryEscaped(group.grid), "tableQuery": Self.queryEscaped(group.table),
                 "fieldQuery": Self.queryEscaped(group.field)]
            }
            return html(pages.render(pages.bulk, ["choosing": true, "groups": groups], title: "批量处理 · Bulk resolution",
                                     session: session, flash: flash))
        }
        let items = try await allItems(filter: ReviewFilter(grid: grid, table: table, kind: .conflict, field: field))
        return html(renderBulk(items, grid: grid, table: table, field: field, session: session, flash: flash))
    }

    func renderBulk(_ items: [ReviewItem], grid: String, table: String, field: String, session: DeskSession,
                    flash: String? = nil, error: String? = nil, note: String = "") -> String {
        let taken = items.prefix(Limits.deskBulkItemsMax)
        let schemaField = schema.table(table)?.field(field)
        func text(_ value: ReviewValue) -> String {
            value.value.isNull ? "（空 · empty）" : DeskFieldText.show(value.value, field: schemaField, masked: false)
        }
        let context: [String: Any] = [
            "previewing": true, "grid": grid, "table": table, "field": field,
            "tableLabel": tableLabel(table), "fieldLabel": fieldLabel(table, field) ?? field,
            "count": items.count, "shown": taken.count, "truncated": items.count > taken.count, "hasItems": !taken.isEmpty,
            "items": taken.map { item -> [String: Any] in
                let newest = item.newestValue
                return ["id": item.id, "record": String((item.row ?? "").prefix(8)),
                        "competing": item.values.map { "\(text($0))（\($0.user), \(Self.time($0.time))）" }.joined(separator: " / "),
                        "newest": newest.map(text) ?? "—"]
            },
            "itemList": taken.map { "\($0.id):\(Self.version($0))" }.joined(separator: ","),
            "csrf": session.csrf, "noteMax": Limits.deskNoteBytesMax, "note": note,
        ]
        return pages.render(pages.bulk, context, title: "批量处理 · Bulk resolution", session: session, flash: flash, error: error)
    }

    func bulkApply(_ request: Request) async throws -> Response {
        let (token, session) = try await authenticated(request, post: true)
        let form = try await DeskForm(request)
        try checkCSRF(form, session)
        guard let grid = form["grid"], !grid.isEmpty, let table = form["table"], !table.isEmpty, let field = form["field"], !field.isEmpty else {
            throw LinliError(.invalidInput, "the bulk form names no grid, table and field; open the bulk page again")
        }
        let filter = ReviewFilter(grid: grid, table: table, kind: .conflict, field: field)
        let note = (form["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        var previewed: [String: String] = [:]
        for pair in (form["items"] ?? "").split(separator: ",") {
            let parts = pair.split(separator: ":")
            if parts.count == 2 { previewed[String(parts[0])] = String(parts[1]) }
        }
        if note.isEmpty || note.utf8.count > Limits.deskNoteBytesMax {
            let items = try await allItems(filter: filter)
            let message = note.isEmpty ? "请写下说明：为什么按最新值处理。 · Write a note saying why newest wins is right here."
                : "说明太长：最多 \(Limits.deskNoteBytesMax) 字节。 · The note is too long: at most \(Limits.deskNoteBytesMax) bytes."
            return html(renderBulk(items, grid: grid, table: table, field: field, session: session, error: message, note: form["note"] ?? ""),
                        status: .badRequest)
        }
        guard !previewed.isEmpty, previewed.count <= Limits.deskBulkItemsMax else {
            throw LinliError(.invalidInput, "the bulk form lists no conflicts (or more than \(Limits.deskBulkItemsMax)); open the bulk page again")
        }
        let storage = self.storage
        let invariants = service.invariants
        let identity = session.identity
        let previewedItems = previewed
        // Only the previewed items, and only those unchanged since the
        // preview: "newest" must be the value the staff member saw.
        let (resolved, skipped, failure) = try await offload { [resolving] () -> (Int, Int, String?) in
            try resolving.withLock {
                let current = try storage.reviewQueue(scopes: nil, filter: filter, invariants: invariants)
                let chosen = current.filter { previewedItems[$0.id] == Self.version($0) }
                let skipped = previewedItems.count - chosen.count
                var resolved = 0
                for start in stride(from: 0, to: chosen.count, by: Limits.deskResolutionsPerChangeSetMax) {
                    let group = chosen[start..<min(start + Limits.deskResolutionsPerChangeSetMax, chosen.count)]
                    do {
                        _ = try storage.resolve(group.map { ($0, ReviewAction.newest) }, note: note, as: identity)
                    } catch let error as LinliError {
                        return (resolved, skipped + chosen.count - resolved, error.message)
                    }
                    resolved += group.count
                }
                return (resolved, skipped, nil)
            }
        }
        if resolved > 0 { service.reviewWatch.merged() }
        Counter(label: "linli_desk_resolutions_total", dimensions: [("kind", "bulk_newest")]).increment(by: resolved)
        logger.info("desk bulk resolution", metadata: ["user": "\(identity.user)", "grid": "\(grid)", "table": "\(table)",
                                                       "field": "\(field)", "resolved": "\(resolved)", "skipped": "\(skipped)"])
        var message = "已按“最新者优先”处理 \(resolved) 个冲突。 · Resolved \(resolved) conflicts with newest wins."
        if skipped > 0 {
            message += " \(skipped) 个在预览后有变化或已被处理，未动，请逐项查看。 · \(skipped) changed or were settled after the preview and were left alone; review them one by one."
        }
        if let failure { message += " 中途出错 · Stopped early: \(failure)" }
        await sessions.setFlash(token: token, message)
        return redirect("/desk/queue?grid=\(Self.queryEscaped(grid))&table=\(Self.queryEscaped(table))")
    }

    // MARK: - Answers

    func handle(_ request: Request, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let refused as Refused {
            return refused.response
        } catch let error as LinliError {
            logger.notice("desk request refused", metadata: ["path": "\(request.uri.path)", "code": "\(error.code.rawValue)", "message": "\(error.message)"])
            let status: HTTPResponse.Status = switch error.code {
            case .overLimit: .contentTooLarge
            case .notFound: .notFound
            case .notPermitted, .revoked, .outOfScope: .forbidden
            case .storage, .unavailable, .damagedFile: .serviceUnavailable
            default: .badRequest
            }
            let session = await current(request)?.session
            let page = pages.render(pages.message, [
                "heading": status == .serviceUnavailable ? "服务器出错 · The server failed" : "请求无效 · The request was refused",
                "text": error.message + (error.hint.map { " " + $0 } ?? ""),
                "link": session == nil ? "/desk" : "/desk/queue",
                "linkText": session == nil ? "登录 · Log in" : "返回待处理 · Back to the queue",
            ], title: "出错 · Error", session: session)
            return html(page, status: status)
        } catch {
            logger.error("desk request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            let page = pages.render(pages.message, [
                "heading": "服务器出错 · The server failed",
                "text": "处理请求时出错，未作更改；请稍后再试，若仍出错请告诉管理员。 · The server failed while answering; nothing was changed. Try again in a moment, and tell the administrator if it keeps failing.",
                "link": "/desk/queue", "linkText": "返回待处理 · Back to the queue",
            ], title: "出错 · Error", session: nil)
            return html(page, status: .internalServerError)
        }
    }

    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ]

    func html(_ page: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        for (name, value) in Self.securityHeaders { headers[HTTPField.Name(name)!] = value }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    func redirect(_ location: String) -> Response {
        var headers: HTTPFields = [.location: location]
        for (name, value) in Self.securityHeaders { headers[HTTPField.Name(name)!] = value }
        return Response(status: .seeOther, headers: headers)
    }

    /// A cookie for the desk's pages only, out of scripts' and other
    /// sites' reach; `maxAge` 0 deletes it, nil keeps it for the browser session.
    func cookie(_ name: String, _ value: String, maxAge: Int?) -> String {
        var text = "\(name)=\(value); Path=/desk; HttpOnly; SameSite=Strict"
        if let maxAge { text += "; Max-Age=\(maxAge)" }
        if secureCookies { text += "; Secure" }
        return text
    }

    static func randomToken(_ bytes: Int) -> String { Hex.encode(SecureRandom.bytes(bytes)) }

    static func query(_ request: Request) -> [String: String] {
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
        return query
    }

    static func queryEscaped(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    // MARK: - Words

    static func kindLabel(_ kind: ReviewKind) -> String {
        switch kind {
        case .conflict: "冲突 · Conflict"
        case .deleteVersusEdit: "删除与修改冲突 · Delete vs. edit"
        case .refused: "被拒绝的提交 · Refused change"
        case .invariant: "规则冲突 · Broken rule"
        }
    }

    func tableLabel(_ name: String) -> String {
        guard let table = schema.table(name), !table.label.isEmpty else { return name }
        return "\(table.label) \(name)"
    }

    func fieldLabel(_ table: String?, _ field: String?) -> String? {
        guard let field else { return nil }
        if field == MergeRules.deletedField { return "删除标记 · deleted" }
        guard let declared = table.flatMap({ schema.table($0)?.field(field) }), !declared.label.isEmpty else { return field }
        return "\(declared.label) \(field)"
    }

    static func time(_ milliseconds: UInt64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    static func age(_ milliseconds: UInt64) -> String {
        let minutes = milliseconds / 60_000
        if minutes < 1 { return "不到 1 分钟 · < 1 min" }
        if minutes < 60 { return "\(minutes) 分钟 · \(minutes) min" }
        let hours = minutes / 60
        if hours < 48 { return "\(hours) 小时 · \(hours) h" }
        return "\(hours / 24) 天 · \(hours / 24) d"
    }
}

// MARK: - Logging in

/// What a login attempt found, off the event loop: the account unlocked, or
/// nothing (one answer for a wrong user name and a wrong password).
enum DeskUnlock: Sendable {
    case unlocked(DeskAccount, DeviceID, SigningKey)
    case refused

    /// A hash to check passwords of unknown user names against, so that a
    /// wrong name takes as long as a wrong password.
    static let decoy: String = (try? PasswordHash.hash("linli-desk-decoy-" + Hex.encode(SecureRandom.bytes(16)))) ?? ""

    static func attempt(user: String, password: String, accountsPath: String) throws -> DeskUnlock {
        let accounts = try DeskAccounts.read(accountsPath)
        guard let account = accounts.first(where: { $0.user == user }) else {
            _ = PasswordHash.verify(password, against: decoy)
            return .refused
        }
        // `unlock` throws only LinliError: a wrong password, or a damaged account.
        let unlocked: Result<(device: DeviceID, key: SigningKey), LinliError> = Result { () throws(LinliError) in
            try account.unlock(password: password)
        }
        switch unlocked {
        case .success(let found): return .unlocked(account, found.device, found.key)
        case .failure(let error) where error.code == .wrongPassphrase: return .refused
        case .failure(let error): throw error
        }
    }
}

/// Failed logins per user name and client address, per client address, and
/// the password checks running.
///
/// The rule (README, "The conflict desk"): failures of a name from one
/// address make only that address wait for that name, so wrong tries from
/// elsewhere never make a staff member's own try wait; an address with many
/// failures over all names waits for every name, so one address cannot try
/// name after name. A try during a wait is refused without a check and not
/// counted. One check at a time per name and address (one per address while
/// the address waits), and ``Limits/deskLoginsInFlightPerAddressMax`` per
/// address in all, so one address cannot take every slot. A success forgives
/// that name's failures from that address, at the address too.
actor DeskLoginThrottle {
    struct Failures {
        var count: Int
        var last: UInt64
    }

    /// A reserved password check; given back with ``finish(_:_:now:)``.
    struct Ticket: Sendable, Equatable {
        let pair: String
        let address: String
    }

    enum Reason: Sendable { case name, address, checking }

    enum Admission: Sendable, Equatable {
        /// Check the password, then ``finish(_:_:now:)``.
        case check(Ticket)
        /// Refused without a check: try again in this many seconds.
        case wait(UInt64, Reason)
        /// Every password-check slot of the server is taken.
        case busy
    }

    enum Outcome: Sendable { case failed, succeeded, undecided }

    private var failures: [String: Failures] = [:]
    private var addressFailures: [String: Failures] = [:]
    private var checking: Set<String> = []
    private var addressChecks: [String: Int] = [:]
    private var inFlight = 0

    static func key(_ user: String) -> String { user.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }

    static func pair(_ user: String, _ address: String) -> String { key(user) + "\u{1F}" + address }

    /// The wait after `count` failures: none for the `free` ones, then 1 s
    /// doubling, up to ``Limits/deskLoginDelaySecondsMax``.
    static func delaySeconds(after count: Int, free: Int = Limits.deskLoginFailuresFree) -> UInt64 {
        guard count >= free else { return 0 }
        let doublings = min(count - free, 20)
        return min(Limits.deskLoginDelaySecondsMax, UInt64(1) << UInt64(doublings))
    }

    /// Whole seconds still to wait after `entry`'s failures (0: none).
    static func wait(_ entry: Failures?, free: Int, now: UInt64) -> UInt64 {
        guard let entry else { return 0 }
        let until = entry.last.addingSaturated(delaySeconds(after: entry.count, free: free) * 1000)
        return until > now ? (until - now + 999) / 1000 : 0
    }

    /// Whether a try of `user` from `address` may check its password now;
    /// when it may, the check is reserved before this returns.
    func admit(user: String, address: String, now: UInt64) -> Admission {
        let pair = Self.pair(user, address)
        let nameWait = Self.wait(failures[pair], free: Limits.deskLoginFailuresFree, now: now)
        if nameWait > 0 { return .wait(nameWait, .name) }
        let addressWait = Self.wait(addressFailures[address], free: Limits.deskLoginFailuresPerAddressFree, now: now)
        if addressWait > 0 { return .wait(addressWait, .address) }
        if checking.contains(pair) { return .wait(1, .checking) }
        let running = addressChecks[address] ?? 0
        let addressWaits = (addressFailures[address]?.count ?? 0) >= Limits.deskLoginFailuresPerAddressFree
        if running >= (addressWaits ? 1 : Limits.deskLoginsInFlightPerAddressMax) { return .wait(1, .checking) }
        guard inFlight < Limits.deskLoginsInFlightMax else { return .busy }
        checking.insert(pair)
        addressChecks[address] = running + 1
        inFlight += 1
        return .check(Ticket(pair: pair, address: address))
    }

    /// Gives back a reserved check with what it found; returns the name's
    /// failures in a row from that address.
    @discardableResult
    func finish(_ ticket: Ticket, _ outcome: Outcome, now: UInt64) -> Int {
        checking.remove(ticket.pair)
        let running = (addressChecks[ticket.address] ?? 1) - 1
        addressChecks[ticket.address] = running > 0 ? running : nil
        inFlight = max(0, inFlight - 1)
        switch outcome {
        case .undecided:
            return 0
        case .succeeded:
            let own = failures.removeValue(forKey: ticket.pair)?.count ?? 0
            if var entry = addressFailures[ticket.address] {
                entry.count -= own
                addressFailures[ticket.address] = entry.count > 0 ? entry : nil
            }
            return 0
        case .failed:
            Self.record(&addressFailures, ticket.address, now: now, capacity: Limits.deskLoginAddressesMax)
            return Self.record(&failures, ticket.pair, now: now, capacity: Limits.deskLoginNamesMax)
        }
    }

    /// Counts a failure of `key`; one after ``Limits/deskLoginFailuresKeptSecondsMax``
    /// without any starts again from one.
    @discardableResult
    private static func record(_ table: inout [String: Failures], _ key: String, now: UInt64, capacity: Int) -> Int {
        let horizon = Limits.deskLoginFailuresKeptSecondsMax * 1000
        if table[key] == nil, table.count >= capacity { forget(&table, now: now, capacity: capacity) }
        var entry = table[key].flatMap { now < $0.last.addingSaturated(horizon) ? $0 : nil } ?? Failures(count: 0, last: now)
        entry.count += 1
        entry.last = max(entry.last, now)
        table[key] = entry
        return entry.count
    }

    /// Forgets entries quiet for long; if still full, all but the newest half.
    private static func forget(_ table: inout [String: Failures], now: UInt64, capacity: Int) {
        let horizon = Limits.deskLoginFailuresKeptSecondsMax * 1000
        table = table.filter { now < $0.value.last.addingSaturated(horizon) }
        if table.count >= capacity {
            let kept = table.sorted { $0.value.last > $1.value.last }.prefix(capacity / 2)
            table = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
        }
    }
}

// MARK: - Sessions

/// A logged-in staff member: the unsealed key lives here, in memory, and
/// nowhere else; it goes when the session ends.
struct DeskSession: Sendable {
    let identity: DeviceIdentity
    let csrf: String
    let created: UInt64
    var lastSeen: UInt64
    var flash: String?
}

/// The open sessions, by the BLAKE2b-256 of their token: the token itself
/// is only in the staff member's cookie.
actor DeskSessions {
    private var sessions: [String: DeskSession] = [:]
    private var sweptAt: UInt64 = 0

    static func key(_ token: String) -> String { Hex.encode(Blake2b256.hash(Data(token.utf8))) }

    /// Sessions held, open or not yet swept.
    var count: Int { sessions.count }

    /// Ends every expired session: its unsealed key goes with it.
    func sweep(now: UInt64) {
        sessions = sessions.filter { Self.isOpen($0.value, now: now) }
        sweptAt = now
    }

    private func sweepIfDue(now: UInt64) {
        if now.subtractingSaturated(sweptAt) >= Limits.deskSessionSweepSecondsMax * 1000 { sweep(now: now) }
    }

    /// Opens a session; returns its token.
    func open(identity: DeviceIdentity, now: UInt64) -> String {
        sweepIfDue(now: now)
        if sessions.count >= Limits.deskSessionsMax {
            sessions = sessions.filter { Self.isOpen($0.value, now: now) }
            if sessions.count >= Limits.deskSessionsMax, let oldest = sessions.min(by: { $0.value.lastSeen < $1.value.lastSeen }) {
                sessions[oldest.key] = nil
            }
        }
        let token = DeskWeb.randomToken(32)
        sessions[Self.key(token)] = DeskSession(identity: identity, csrf: DeskWeb.randomToken(32), created: now, lastSeen: now)
        return token
    }

    static func isOpen(_ session: DeskSession, now: UInt64) -> Bool {
        now < session.lastSeen + Limits.deskSessionIdleSecondsMax * 1000
            && now < session.created + Limits.deskSessionLifetimeSecondsMax * 1000
    }

    /// The open session of `token`, marked as used now; an expired one ends.
    func find(token: String, now: UInt64) -> DeskSession? {
        sweepIfDue(now: now)
        let key = Self.key(token)
        guard var session = sessions[key] else { return nil }
        guard Self.isOpen(session, now: now) else {
            sessions[key] = nil
            return nil
        }
        session.lastSeen = now
        sessions[key] = session
        return session
    }

    func close(token: String) { sessions[Self.key(token)] = nil }

    func setFlash(token: String, _ text: String) { sessions[Self.key(token)]?.flash = text }

    func takeFlash(token: String) -> String? {
        let key = Self.key(token)
        defer { sessions[key]?.flash = nil }
        return sessions[key]?.flash
    }
}

// MARK: - Forms

/// An `application/x-www-form-urlencoded` body.
struct DeskForm: Sendable {
    var values: [String: String] = [:]

    init(_ request: Request) async throws {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: Limits.deskFormBytesMax) } catch {
            throw LinliError(.overLimit, "the form is larger than \(Limits.deskFormBytesMax) bytes", hint: "send less at once")
        }
        try self.init(body: String(decoding: buffer.readableBytesView, as: UTF8.self))
    }

    init(body: String) throws {
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : "") else {
                throw LinliError(.malformed, "the form is not URL-encoded correctly", hint: "reload the page and submit again")
            }
            values[name] = value
        }
    }

    static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    subscript(_ name: String) -> String? { values[name] }
}

// MARK: - Values as text

/// Typed values as staff read and type them: parsed by ``FieldText``
/// (the field clients' parser), references as whole ids.
enum DeskFieldText {
    static func parse(_ raw: String, field: FieldSchema, table: TableSchema) throws -> Value {
        try FieldText.parse(raw, field: field, table: table, resolve: FieldText.wholeID)
    }

    /// The value as text to edit: what ``parse`` reads back.
    static func edit(_ value: Value, field: FieldSchema?) -> String {
        FieldText.show(value, field: field ?? FieldSchema("value", .text), reveal: true)
    }

    /// The value to read, personal data masked when `masked`.
    static func show(_ value: Value, field: FieldSchema?, masked: Bool) -> String {
        guard let field else { return edit(value, field: nil) }
        return FieldText.show(value, field: field, reveal: !masked)
    }

    static func typeHint(_ field: FieldSchema) -> String {
        var hint: String = switch field.type {
        case .text: "文本 · text"
        case .integer: "整数 · whole number"
        case .real: "数字 · number"
        case .boolean: "是 / 否 · yes / no"
        case .date: "日期 YYYY-MM-DD（2026/9/1、2026年9月1日 亦可） · date"
        case .timestamp: "时间 YYYY-MM-DD HH:MM · time"
        case .bytes: "十六进制 · hex"
        case .reference: "记录编号（32 位十六进制） · record id (32 hex digits)"
        }
        switch field.format {
        case .citizenID: hint = "18 位身份号码（身份证、居住证、永居证） · 18-character identity number"
        case .mobile: hint = "11 位手机号 · 11-digit mobile number"
        case .phone: hint = "手机或座机号码 · mobile or landline number"
        case .ethnicity: hint = "民族名称，如 汉 或 汉族 · ethnic group as on the card, e.g. 汉"
        case .document: hint = "证件号码，字母和数字 · document number, letters and digits"
        case nil: break
        }
        if let choices = field.choices, !choices.isEmpty { hint += "：" + choices.joined(separator: " / ") }
        if let minimum = field.minimum, let maximum = field.maximum { hint += "（\(edit(.real(minimum), field: nil)) – \(edit(.real(maximum), field: nil))）" }
        return hint
    }
}

// MARK: - Pages

/// The compiled templates and the layout around them.
struct DeskPages: Sendable {
    let layout: MustacheTemplate
    let login: MustacheTemplate
    let queue: MustacheTemplate
    let item: MustacheTemplate
    let bulk: MustacheTemplate
    let message: MustacheTemplate

    init() throws {
        layout = try MustacheTemplate(string: DeskTemplates.layout)
        login = try MustacheTemplate(string: DeskTemplates.login)
        queue = try MustacheTemplate(string: DeskTemplates.queue)
        item = try MustacheTemplate(string: DeskTemplates.item)
        bulk = try MustacheTemplate(string: DeskTemplates.bulk)
        message = try MustacheTemplate(string: DeskTemplates.message)
    }

    /// `template` with `context`, inside the layout.
    func render(_ template: MustacheTemplate, _ context: [String: Any], title: String, session: DeskSession? = nil,
                flash: String? = nil, error: String? = nil) -> String {
        var page: [String: Any] = ["title": title, "content": template.render(context)]
        if let session {
            page["loggedIn"] = true
            page["user"] = session.identity.user
            page["csrf"] = session.csrf
        }
        if let flash { page["flash"] = flash }
        if let error { page["error"] = error }
        return layout.render(page)
    }
}
