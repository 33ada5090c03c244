import Foundation
import LinliCore
import LinliTesting
import Testing

/// What an inspector is told about time and trouble: times in the
/// device's time zone, each failed attempt of a sync with the number left
/// and when the next comes, and a device folder that follows `$HOME`.
@Suite struct FieldFeedbackTests {
    @Test func timesFollowTheTimeZoneAndASyncWithTheServerDownCountsItsAttempts() async throws {
        let district = try await District()
        _ = try district.sync("li")
        let linli = Programs.built("linli")
        for (zone, offset) in [("Asia/Shanghai", "+08:00"), ("UTC", "+00:00"), ("America/New_York", "-05:00")] {
            let shown = try Programs.run(linli, ["status"] + district.device("li"), environment: ["TZ": zone])
            #expect(shown.status == 0, "\(shown.error)")
            let line = shown.output.split(separator: "\n").first { $0.contains("last sync:") } ?? ""
            #expect(line.hasSuffix(offset), "TZ=\(zone): \(line)")
            #expect(!shown.output.contains("+0000"), "TZ=\(zone): \(shown.output)")
            let json = try Programs.run(linli, ["status", "--json"] + district.device("li"), environment: ["TZ": zone])
            let object = try json.json() as? [String: Any]
            #expect((object?["last_sync"] as? String)?.hasSuffix(offset == "+00:00" ? "Z" : offset) == true, "\(object ?? [:])")
        }

        district.server.terminate()
        district.server.waitUntilExit()
        let failed = try Programs.run(linli, ["sync"] + district.device("li"), environment: ["TZ": "Asia/Shanghai"])
        #expect(failed.status != 0)
        let retries = failed.error.split(separator: "\n").filter { $0.contains("次未成功") }
        // Eight attempts (the field client's): seven failures are followed by a next one.
        #expect(retries.count == 7, "\(failed.error)")
        for (index, line) in retries.enumerated() {
            #expect(line.contains("第 \(index + 1)/8 次未成功") && line.contains("attempt \(index + 1) of 8 failed"), "\(line)")
            #expect(!line.contains("nothing is lost"), "the hint is said once, at the end: \(line)")
            // The next try's clock time, and how long until it.
            #expect(line.range(of: #"\d\d:\d\d:\d\d 再试（\d+\.\d 秒后）"#, options: .regularExpression) != nil, "\(line)")
        }
        #expect(failed.error.contains(district.url), "the error names the address: \(failed.error)")
    }

    @Test func theDeviceFolderFollowsHome() throws {
        let home = Fixtures.TemporaryDirectory()
        try "2468\n".write(toFile: home.path("pin"), atomically: true, encoding: .utf8)
        let made = try Programs.run(Programs.built("linli"), ["init", "--label", "巡查手机", "--pin-file", home.path("pin")],
                                    environment: ["HOME": home.path("")])
        #expect(made.status == 0, "\(made.error)")
        #expect(FileManager.default.fileExists(atPath: home.path(".linli/request.json")), "\(made.output)\(made.error)")
    }
}
