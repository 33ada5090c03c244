import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// The staff's conflict desk (`/desk` on `linli-server`) end to end: a desk
/// account made with `linli-admin desk add`, the real server started with
/// `--desk-accounts`, a conflict made by two inspectors with `linli`, and a
/// headless Chromium driven over WebDriver as a staff member at a keyboard.
@Suite(.serialized) struct DeskWebTests {
    static let staff = "陈静"
    static let password = "correct horse battery"

    /// A district (``District``) with a second G1 inspector (zhao), a desk
    /// account, the server restarted with the desk, and one conflict: li
    /// and zhao changed the same resident's phone apart.
    struct Desk {
        let district: District
        let accounts: String
        let deskDevice: String
        let person: String
        let liPhone = "13800002222"
        let zhaoPhone = "13900003333"
        var url: String { district.url }

        static func make() async throws -> Desk {
            let district = try await District()
            let folder = district.folder
            // A second inspector of G1, enrolled as the District enrols li.
            try district.expectSuccess("linli", ["init", "--label", "zhao"] + district.device("zhao"))
            try district.admin(["device", "enroll", folder.path("zhao/request.json")] + district.auth
                               + ["--role", "inspector", "--grid", "G1", "--out", folder.path("zhao.bundle")])
            try district.expectSuccess("linli", ["enrol", folder.path("zhao.bundle"), "--user", "赵磊"] + district.device("zhao"))

            // The staff member's desk account, and the server learns its certificate.
            try "\(password)\n".write(toFile: folder.path("desk-password"), atomically: true, encoding: .utf8)
            let accounts = folder.path("desk-accounts.json")
            let added = try district.admin(["desk", "add", "--user", staff, "--password-file", folder.path("desk-password"),
                                            "--accounts", accounts, "--json"] + district.auth)
            let deskDevice = try #require((try added.json() as? [String: Any])?["device"] as? String)
            #expect(try FileManager.default.attributesOfItem(atPath: accounts)[.posixPermissions] as? Int == 0o600)
            let duplicate = try Programs.run(Programs.built("linli-admin"), ["desk", "add", "--user", staff, "--password-file",
                                                                             folder.path("desk-password"), "--accounts", accounts] + district.auth)
            #expect(duplicate.status == 2 && duplicate.error.contains("already has an account named \(staff)"), "\(duplicate.error)")
            let listed = try district.admin(["desk", "list", "--accounts", accounts, "--dir", folder.path("authority"), "--json"])
            let rows = (try listed.json() as? [String: Any])?["accounts"] as? [[String: Any]]
            #expect(rows?.count == 1 && rows?.first?["device"] as? String == deskDevice && rows?.first?["certificate"] as? String == "staff")
            try district.admin(["sync"] + district.auth + ["--server", district.url])
            try await restart(district, extra: ["--desk-accounts", accounts])

            // Both inspectors have the resident; then, apart, both change the phone.
            let person = try district.add("li", "person", ["name=张秀英", "residence_type=户籍人口", "phone=13800001111"])
            _ = try district.sync("li")
            _ = try district.sync("zhao")
            let desk = Desk(district: district, accounts: accounts, deskDevice: deskDevice, person: person)
            _ = try district.json("li", ["edit", person, "phone=\(desk.liPhone)"])
            _ = try district.json("zhao", ["edit", person, "phone=\(desk.zhaoPhone)"])
            for who in ["li", "zhao", "li"] { _ = try district.sync(who) }
            #expect((try district.status("li")["conflicts"] as? [Any])?.count == 1)
            return desk
        }

        /// Stops the District's server and starts it again with `extra` options.
        static func restart(_ district: District, extra: [String]) async throws {
            district.server.terminate()
            district.server.waitUntilExit()
            let folder = district.folder
            let request = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder.path("server.req")))) as? [String: Any]
            let server = Process()
            server.executableURL = URL(fileURLWithPath: Programs.built("linli-server"))
            server.arguments = ["serve", "--data", folder.path("server"), "--listen", "127.0.0.1:\(district.port)",
                                "--authority", try district.authorityKey(),
                                "--schema", Programs.root.appendingPathComponent("Protocol/schema/community-v1.json").path,
                                "--device", request?["device"] as? String ?? "", "--key", folder.path("server.key"),
                                "--key-passphrase-file", district.pin] + extra
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: folder.path("server.log")))
            log.seekToEndOfFile()
            server.standardOutput = log
            server.standardError = log
            try server.run()
            district.server = server
            for _ in 0..<100 {
                if CuttingProxy.canConnect(port: district.port) { return }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            throw LinliError(.unreachable, "linli-server did not start again: \((try? String(contentsOfFile: folder.path("server.log"), encoding: .utf8)) ?? "")")
        }
    }

    // MARK: - A staff member settles a conflict in the browser

    @Test func staffSettleAConflictInTheBrowserAndBothInspectorsGetTheChosenValue() async throws {
        try #require(WebDriver.isAvailable, "chromium and chromedriver are missing; install chromium and chromium-driver (make deps)")
        let desk = try await Desk.make()
        let district = desk.district
        let browser = try await WebDriver.start()
        let chosen: String
        do {
            // Log in with the keyboard: the user name field has the focus.
            try await browser.open(desk.url + "/desk")
            #expect(try await browser.title().contains("登录"))
            #expect(try await browser.find("html").attribute("lang") == "zh-CN")
            let focused = try await browser.activeElement()
            #expect(try await focused.attribute("id") == "user")
            try await focused.sendKeys(Self.staff)
            try await browser.pressKeys(WebDriver.Key.tab)
            #expect(try await browser.activeElement().attribute("id") == "password")
            try await browser.pressKeys(Self.password + WebDriver.Key.enter)

            // The queue: one conflict, the phone of the resident.
            _ = try await browser.waitFor("#queue")
            #expect(try await browser.currentURL().hasSuffix("/desk/queue"))
            #expect(try await browser.find("#count").text().contains("1"))
            let session = try #require(try await browser.cookies().first { $0.name == "linli_desk" })
            #expect(session.httpOnly && session.path == "/desk" && session.value.count == 64)
            let rows = try await browser.findAll("#queue tbody tr")
            #expect(rows.count == 1)
            let rowText = try await rows[0].text()
            #expect(rowText.contains("冲突") && rowText.contains("G1") && rowText.contains("phone"), "\(rowText)")
            // Personal data is masked in the list.
            #expect(!rowText.contains(desk.liPhone) && rowText.contains("139****3333"), "\(rowText)")

            let png = try await browser.screenshot()
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
            // Every run keeps the queue's picture under .build (not in git);
            // LINLI_DESK_SCREENSHOTS=docs/images refreshes the README's.
            let kept = Programs.root.appendingPathComponent(".build/test-screenshots/desk-queue.png")
            try FileManager.default.createDirectory(at: kept.deletingLastPathComponent(), withIntermediateDirectories: true)
            try png.write(to: kept, options: .atomic)
            #expect(FileManager.default.fileExists(atPath: kept.path))

            // The item: both values side by side, with who and which device.
            try await browser.find("#queue tbody a").click()
            _ = try await browser.waitFor("#resolve")
            let page = try await browser.find("main").text()
            #expect(page.contains(desk.liPhone) && page.contains(desk.zhaoPhone) && page.contains("李明") && page.contains("赵磊"), "\(page)")
            #expect(try await browser.findAll("#history tbody tr").count == 3)
            // LINLI_DESK_SCREENSHOTS=FOLDER keeps pictures of the pages, for the docs.
            if let shots = ProcessInfo.processInfo.environment["LINLI_DESK_SCREENSHOTS"] {
                try await browser.saveScreenshot(to: URL(fileURLWithPath: shots).appendingPathComponent("desk-item.png"))
                try png.write(to: URL(fileURLWithPath: shots).appendingPathComponent("desk-queue.png"))
            }
            // Keep zhao's value.
            var index: String?
            for radio in try await browser.findAll("input[name=choice]") {
                let id = try #require(try await radio.attribute("id"))
                if try await browser.find("label[for=\(id)]").text().contains(desk.zhaoPhone) {
                    try await radio.click()
                    index = try await radio.attribute("value")
                }
            }
            #expect(index != nil)
            chosen = desk.zhaoPhone
            try await browser.find("#note").sendKeys("电话回访核实：住户确认新号码")
            try await browser.find("#resolve").click()

            _ = try await browser.waitFor(".flash")
            #expect(try await browser.currentURL().hasSuffix("/desk/queue"))
            #expect(try await browser.find(".flash").text().contains("Resolved"))
            #expect(try await browser.findAll("#queue tbody tr").isEmpty)
            #expect(try await browser.find("#count").text().contains("0"))

            // Logging out ends the session: the cookie copied before is refused.
            try await browser.find("header button[type=submit]").click()
            _ = try await browser.waitFor("#user")
            #expect(try await browser.find(".flash").text().contains("logged out"))
            let old = try await Plain.send("GET", desk.url + "/desk/queue", cookies: ["linli_desk": session.value])
            #expect(old.status == 303 && old.location == "/desk", "\(old.status) \(old.location ?? "")")
            let oldPost = try await Plain.send("POST", desk.url + "/desk/logout", cookies: ["linli_desk": session.value], form: ["csrf": "x"])
            #expect(oldPost.status == 401)
        } catch {
            await browser.quit()
            throw error
        }
        await browser.quit()

        // Both inspectors sync and show the chosen value, with no conflict.
        for who in ["li", "zhao"] {
            _ = try district.sync(who)
            let shown = try district.json(who, ["show", desk.person, "--reveal"]) as? [String: Any]
            #expect((shown?["fields"] as? [String: Any])?["phone"] as? String == chosen, "\(who): \(shown ?? [:])")
            #expect((shown?["conflicts"] as? [Any])?.isEmpty == true, "\(who): \(shown ?? [:])")
            #expect((try district.status(who)["conflicts"] as? [Any])?.isEmpty == true)
        }

        // The resolution's audit row, signed by the desk account's device.
        let li = try FieldDevice.open(folder: district.folder.path("li"))
        let store = try li.store()
        let table = try #require(store.schema.table(ReviewSchema.resolution))
        let records = try Records(store: store).list(table)
        #expect(records.count == 1)
        let record = try #require(records.first)
        #expect(record.values["decision"] == .text("chosen") && record.values["value"] == .text(chosen))
        #expect(record.values["subject_field"] == .text("phone") && record.values["note"] == .text("电话回访核实：住户确认新号码"))
        let signed = try store.fieldHistory(table: ReviewSchema.resolution, row: record.id, field: "decision", scope: .grid("G1"))
        #expect(signed.count == 1 && signed.first?.dot.device == desk.deskDevice && signed.first?.user == Self.staff, "\(signed)")
        // And the replica holding it is authentic through and through.
        let audit = try Programs.run(Programs.built("linli-admin"), ["audit", "--data", li.replicaPath, "--dir", district.folder.path("authority")])
        #expect(audit.status == 0, "\(audit.output) \(audit.error)")
    }

    // MARK: - Who may not get in, and what is refused

    @Test func theDeskRefusesWrongPasswordsFormsWithoutTheirTokenAndFieldDevices() async throws {
        let desk = try await Desk.make()
        let district = desk.district

        // The server's bare address leads to the desk.
        let root = try await Plain.send("GET", desk.url + "/")
        #expect(root.status == 303 && root.location == "/desk", "\(root.status) \(root.headers)")

        // A wrong password: 401, one message for a wrong name or password, no session.
        for (user, password) in [(Self.staff, "wrong password"), ("无此人", Self.password)] {
            let refused = try await Plain.login(desk.url, user: user, password: password)
            #expect(refused.status == 401, "\(refused.status)")
            #expect(refused.body.contains("The user name or the password is wrong"))
            #expect(!refused.setCookies.contains { $0.hasPrefix("linli_desk=") && !$0.hasPrefix("linli_desk=;") })
        }
        // More failures for the name: after three, each one makes the next
        // try wait (1 s, then 2 s, 4 s...). Tries during a wait are answered
        // 429 and not counted. After the fifth counted failure the wait is
        // 4 s, long enough that even a busy machine sends the next try
        // inside it: then even the right password waits.
        var counted = 1
        var lastFailure = ContinuousClock.now
        while counted < 5 {
            let wrong = try await Plain.login(desk.url, user: Self.staff, password: "wrong again \(counted)")
            if wrong.status == 429 {
                #expect(wrong.body.contains("Too many failed logins"))
                let seconds = UInt64(wrong.headers["retry-after"] ?? "") ?? 0
                #expect((1...Limits.deskLoginDelaySecondsMax).contains(seconds), "Retry-After \(wrong.headers["retry-after"] ?? "none")")
                try await Task.sleep(nanoseconds: seconds * 1_000_000_000 + 100_000_000)
                continue
            }
            #expect(wrong.status == 401, "\(wrong.status)")
            counted += 1
            lastFailure = ContinuousClock.now
        }
        let throttled = try await Plain.login(desk.url, user: Self.staff, password: Self.password)
        // Answered within 3.5 s of the fifth failure, the try fell inside
        // its 4 s wait. A machine so busy that it took longer has let the
        // wait pass, and then the right password rightly logs in.
        if ContinuousClock.now - lastFailure < .milliseconds(3_500) {
            #expect(throttled.status == 429 && throttled.body.contains("Too many failed logins"), "\(throttled.status)")
            #expect(!throttled.setCookies.contains { $0.hasPrefix("linli_desk=") && !$0.hasPrefix("linli_desk=;") })
        } else {
            #expect(throttled.status == 429 || throttled.status == 303, "\(throttled.status)")
        }
        let waitSeconds = UInt64(throttled.headers["retry-after"] ?? "") ?? 4
        #expect((1...4).contains(waitSeconds), "Retry-After \(throttled.headers["retry-after"] ?? "none")")
        try await Task.sleep(nanoseconds: waitSeconds * 1_000_000_000 + 200_000_000)

        // The right password after the wait: a session.
        let login = try await Plain.login(desk.url, user: Self.staff, password: Self.password)
        #expect(login.status == 303 && login.location == "/desk/queue", "\(login.status) \(login.body)")
        let cookie = try #require(login.setCookies.first { $0.hasPrefix("linli_desk=") })
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/desk") && !cookie.contains("Secure"))
        let token = String(cookie.dropFirst("linli_desk=".count).prefix { $0 != ";" })
        let cookies = ["linli_desk": token]

        // Nothing was resolved by the failed logins; the page's headers lock it down.
        let queue = try await Plain.send("GET", desk.url + "/desk/queue", cookies: cookies)
        #expect(queue.status == 200 && queue.body.contains("data-item="))
        #expect(queue.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
        #expect(queue.headers["x-content-type-options"] == "nosniff" && queue.headers["cache-control"] == "no-store")
        let csrf = try #require(Plain.hidden("csrf", in: queue.body))
        let item = try #require(Plain.attribute("data-item", in: queue.body))

        // A resolution without the CSRF token (or with another) is refused and changes nothing.
        let page = try await Plain.send("GET", desk.url + "/desk/item/\(item)", cookies: cookies)
        let version = try #require(Plain.hidden("version", in: page.body))
        let fields = ["action": "choose", "choice": "0", "note": "no token", "version": version]
        let noToken = try await Plain.send("POST", desk.url + "/desk/item/\(item)/resolve", cookies: cookies, form: fields)
        #expect(noToken.status == 403 && noToken.body.contains("security token"), "\(noToken.status)")
        var forged = fields
        forged["csrf"] = String(repeating: "0", count: 64)
        #expect(try await Plain.send("POST", desk.url + "/desk/item/\(item)/resolve", cookies: cookies, form: forged).status == 403)
        // A form without a note, or with a bad corrected value, says what is wrong.
        var noNote = fields
        noNote["csrf"] = csrf
        noNote["note"] = "  "
        let unnoted = try await Plain.send("POST", desk.url + "/desk/item/\(item)/resolve", cookies: cookies, form: noNote)
        #expect(unnoted.status == 400 && unnoted.body.contains("Write a note"))
        var badValue = noNote
        badValue["note"] = "typed"
        badValue["choice"] = "corrected"
        badValue["corrected"] = "12345"
        let typed = try await Plain.send("POST", desk.url + "/desk/item/\(item)/resolve", cookies: cookies, form: badValue)
        #expect(typed.status == 400 && typed.body.contains("person.phone"), "\(typed.body)")
        // A stale version: the item changed since the page was read.
        var stale = noNote
        stale["note"] = "stale"
        stale["version"] = String(repeating: "a", count: 24)
        #expect(try await Plain.send("POST", desk.url + "/desk/item/\(item)/resolve", cookies: cookies, form: stale).status == 409)
        #expect((try district.status("li")["conflicts"] as? [Any])?.count == 1)
        #expect(try await Plain.send("GET", desk.url + "/desk/item/\(item)", cookies: cookies).status == 200)

        // Two edits, each valid alone, break a rule together: li ends the
        // lease early while zhao moves its start later. The server refuses
        // zhao's change set and keeps it; staff resubmit it corrected.
        let house = try district.add("li", "house", ["address=幸福路12号"])
        let rental = try district.add("li", "rental", ["house=\(house)", "landlord=赵建国", "lease_start=2026-09-01", "lease_end=2027-08-31"])
        for who in ["li", "zhao"] { _ = try district.sync(who) }
        _ = try district.json("li", ["edit", rental, "lease_end=2026-12-31"])
        _ = try district.json("zhao", ["edit", rental, "lease_start=2027-03-01"])
        for who in ["li", "zhao", "li"] { _ = try district.sync(who) }
        let refusals = try await Plain.send("GET", desk.url + "/desk/queue?kind=refused", cookies: cookies)
        let refusedItem = try #require(Plain.attribute("data-item", in: refusals.body))
        let refusedPage = try await Plain.send("GET", desk.url + "/desk/item/\(refusedItem)", cookies: cookies)
        #expect(refusedPage.status == 200 && refusedPage.body.contains("schema_violation") && refusedPage.body.contains("赵磊"))
        #expect(Plain.hidden("fix.lease_start", in: refusedPage.body) == "2027-03-01", "\(refusedPage.body)")
        var resubmit = ["csrf": csrf, "action": "resubmit", "version": try #require(Plain.hidden("version", in: refusedPage.body)),
                        "note": "与房东核实：租期自 10 月 1 日起", "fix.lease_start": "2026-02-30"]
        let badDate = try await Plain.send("POST", desk.url + "/desk/item/\(refusedItem)/resolve", cookies: cookies, form: resubmit)
        #expect(badDate.status == 400 && badDate.body.contains("lease_start") && badDate.body.contains("2026-02-30"), "\(badDate.body)")
        resubmit["fix.lease_start"] = "2026-10-01"
        let resubmitted = try await Plain.send("POST", desk.url + "/desk/item/\(refusedItem)/resolve", cookies: cookies, form: resubmit)
        #expect(resubmitted.status == 303, "\(resubmitted.status) \(resubmitted.body)")
        _ = try district.sync("li")
        let lease = try district.json("li", ["show", rental]) as? [String: Any]
        #expect((lease?["fields"] as? [String: Any])?["lease_start"] as? String == "2026-10-01", "\(lease ?? [:])")

        // One citizen ID on two residents, each recorded alone: a broken
        // rule across records. Staff correct one record's number.
        _ = try district.add("li", "person", ["name=张秀英", "residence_type=户籍人口", "id_number=110105195803120029"])
        let twin = try district.add("zhao", "person", ["name=张秀英", "residence_type=户籍人口", "id_number=110105195803120029"])
        for who in ["li", "zhao"] { _ = try district.sync(who) }
        let rules = try await Plain.send("GET", desk.url + "/desk/queue?kind=invariant", cookies: cookies)
        let ruleItem = try #require(Plain.attribute("data-item", in: rules.body), "\(rules.body)")
        let rulePage = try await Plain.send("GET", desk.url + "/desk/item/\(ruleItem)", cookies: cookies)
        #expect(rulePage.status == 200 && rulePage.body.contains("the same citizen ID on two person records"))
        var edit = ["csrf": csrf, "action": "edit", "version": try #require(Plain.hidden("version", in: rulePage.body)),
                    "target": "person|\(twin)|id_number", "value": "110105195803120020", "note": "核对户口本：第二人身份证号录错"]
        let badNumber = try await Plain.send("POST", desk.url + "/desk/item/\(ruleItem)/resolve", cookies: cookies, form: edit)
        #expect(badNumber.status == 400 && badNumber.body.contains("id_number"), "\(badNumber.body)")
        edit["value"] = "110105196507070033"
        let edited = try await Plain.send("POST", desk.url + "/desk/item/\(ruleItem)/resolve", cookies: cookies, form: edit)
        #expect(edited.status == 303, "\(edited.status) \(edited.body)")
        let rulesAfter = try await Plain.send("GET", desk.url + "/desk/queue?kind=invariant", cookies: cookies)
        #expect(!rulesAfter.body.contains("data-item="), "\(rulesAfter.body)")

        // Signed API requests: the staff desk device reads the queue; an
        // inspector's and a kiosk's devices are refused with 403.
        let account = try #require(try DeskAccounts.read(desk.accounts).first)
        let unlocked = try account.unlock(password: Self.password)
        let staffAnswer = try await Plain.signed(desk.url, "/v1/desk/queue", device: unlocked.device, key: unlocked.key)
        #expect(staffAnswer.status == 200 && staffAnswer.body.contains(item), "\(staffAnswer.status) \(staffAnswer.body)")
        for who in ["li", "kiosk"] {
            let device = try FieldDevice.open(folder: district.folder.path(who))
            let identity = try device.identity(pin: "2468")
            let answer = try await Plain.signed(desk.url, "/v1/desk/queue", device: identity.device, key: identity.key)
            #expect(answer.status == 403 && answer.body.contains("only central staff"), "\(who): \(answer.status) \(answer.body)")
        }

        // Bulk: the groups, the preview of newest wins, then apply.
        let groups = try await Plain.send("GET", desk.url + "/desk/bulk", cookies: cookies)
        #expect(groups.status == 200 && groups.body.contains("field=phone"))
        let preview = try await Plain.send("GET", desk.url + "/desk/bulk?grid=G1&table=person&field=phone", cookies: cookies)
        #expect(preview.status == 200 && preview.body.contains("<strong>\(desk.zhaoPhone)</strong>"), "\(preview.body)")
        let items = try #require(Plain.hidden("items", in: preview.body))
        let applied = try await Plain.send("POST", desk.url + "/desk/bulk", cookies: cookies, form: [
            "csrf": csrf, "grid": "G1", "table": "person", "field": "phone", "items": items, "note": "批量：以最后一次登记为准",
        ])
        #expect(applied.status == 303 && applied.location?.hasPrefix("/desk/queue") == true, "\(applied.status) \(applied.body)")
        let after = try await Plain.send("GET", desk.url + (applied.location ?? "/desk/queue"), cookies: cookies)
        #expect(after.body.contains("Resolved 1 conflicts with newest wins") && !after.body.contains("data-item="), "\(after.body)")
        // The item is gone; its page says it may have been resolved by someone else.
        let gone = try await Plain.send("GET", desk.url + "/desk/item/\(item)", cookies: cookies)
        #expect(gone.status == 404 && gone.body.contains("resolved by someone else"))
        _ = try district.sync("li")
        let shown = try district.json("li", ["show", desk.person, "--reveal"]) as? [String: Any]
        #expect((shown?["fields"] as? [String: Any])?["phone"] as? String == desk.zhaoPhone)

        // Revoking the desk device ends its session at the next request.
        try district.admin(["device", "revoke", desk.deskDevice, "--after-seq", "1", "--reason", "left the street office"] + district.auth)
        try district.admin(["sync"] + district.auth + ["--server", desk.url])
        let revoked = try await Plain.send("GET", desk.url + "/desk/queue", cookies: cookies)
        #expect(revoked.status == 403 && revoked.body.contains("revoked"), "\(revoked.status)")
        #expect(try await Plain.send("GET", desk.url + "/desk/queue", cookies: cookies).status == 303)
        let refusedLogin = try await Plain.login(desk.url, user: Self.staff, password: Self.password)
        #expect(refusedLogin.status == 403 && refusedLogin.body.contains("revoked"))
    }
}

/// Plain HTTP requests to the desk, as a script (or an attacker) sends
/// them: no cookie jar, redirects not followed.
enum Plain {
    struct Answer: Sendable {
        let status: Int
        let headers: [String: String]
        let setCookies: [String]
        let body: String
        var location: String? { headers["location"] }
    }

    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }

    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        return URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }()

    static func send(_ method: String, _ url: String, cookies: [String: String] = [:], form: [String: String]? = nil,
                     headers: [(String, String)] = []) async throws -> Answer {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        if !cookies.isEmpty { request.setValue(cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "), forHTTPHeaderField: "Cookie") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let form {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            request.httpBody = Data(form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
                .joined(separator: "&").utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { continuation in
            session.dataTask(with: request) { data, response, error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: (data ?? Data(), response!)) }
            }.resume()
        }
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields[String(describing: key).lowercased()] = String(describing: value) }
        // Several Set-Cookie headers may arrive folded into one line.
        let setCookies = (fields["set-cookie"] ?? "").components(separatedBy: ", linli").enumerated().map { $0.offset == 0 ? $0.element : "linli" + $0.element }
            .filter { !$0.isEmpty }
        return Answer(status: http.statusCode, headers: fields, setCookies: setCookies, body: String(decoding: data, as: UTF8.self))
    }

    /// Logs in as a browser does: the form (and its cookie) first, then the post.
    static func login(_ base: String, user: String, password: String) async throws -> Answer {
        let form = try await send("GET", base + "/desk")
        let token = try #require(hidden("login_csrf", in: form.body))
        return try await send("POST", base + "/desk/login", cookies: ["linli_desk_login": token],
                              form: ["user": user, "password": password, "login_csrf": token])
    }

    /// A request signed as a device (PROTOCOL.md 1.3), as `linli` signs its own.
    static func signed(_ base: String, _ path: String, device: DeviceID, key: SigningKey) async throws -> Answer {
        let signature = RequestSignature.sign(method: "GET", path: path, body: Data(), device: device, key: key,
                                              time: UInt64(Date().timeIntervalSince1970 * 1000))
        return try await send("GET", base + path, headers: signature.headers)
    }

    /// The value of a hidden input of the page.
    static func hidden(_ name: String, in html: String) -> String? {
        guard let start = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(html[start.upperBound...].prefix { $0 != "\"" })
    }

    /// The first value of an attribute in the page.
    static func attribute(_ name: String, in html: String) -> String? {
        guard let start = html.range(of: "\(name)=\"") else { return nil }
        return String(html[start.upperBound...].prefix { $0 != "\"" })
    }
}
