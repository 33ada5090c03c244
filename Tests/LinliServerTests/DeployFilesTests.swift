import Foundation
import LinliTesting
import Testing

/// The service files in deploy/systemd, checked by systemd's own tools:
/// they parse, name nothing unknown, and the server's sandbox stays tight.
struct DeployFilesTests {
    static let analyze = "/usr/bin/systemd-analyze"

    /// The units with the installed program's path replaced by the built
    /// one, which `verify` checks exists.
    func units() throws -> Fixtures.TemporaryDirectory {
        let folder = Fixtures.TemporaryDirectory()
        for name in ["linli-server.service", "linli-backup.service", "linli-backup.timer"] {
            let text = try String(contentsOf: Programs.root.appendingPathComponent("deploy/systemd/\(name)"), encoding: .utf8)
            try text.replacingOccurrences(of: "/usr/local/bin/linli-server", with: Programs.built("linli-server"))
                .write(toFile: folder.path(name), atomically: true, encoding: .utf8)
        }
        return folder
    }

    @Test func theServiceFilesVerifyWithoutAWarning() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.analyze), "systemd-analyze is missing: run make deps (Debian's systemd)")
        let folder = try units()
        let checked = try Programs.run(Self.analyze, ["verify"] + ["linli-server.service", "linli-backup.service", "linli-backup.timer"].map(folder.path))
        #expect(checked.status == 0, "\(checked.output)\(checked.error)")
        #expect(checked.error.isEmpty && checked.output.isEmpty, "systemd-analyze verify warned: \(checked.output)\(checked.error)")
    }

    @Test func theServersSandboxExposesLittle() throws {
        let folder = try units()
        let rated = try Programs.run(Self.analyze, ["security", "--offline=yes", "--no-pager", folder.path("linli-server.service")])
        let text = rated.output + rated.error
        // "→ Overall exposure level for linli-server.service: 1.1 OK"
        let level = text.range(of: "Overall exposure level for linli-server.service: ").flatMap { range in
            Double(text[range.upperBound...].prefix { $0.isNumber || $0 == "." })
        }
        #expect(level != nil, "no exposure level in: \(text.suffix(400))")
        // systemd calls 0 to 2 "OK"; 10 is no sandbox at all.
        #expect((level ?? 10) <= 2.0, "exposure \(level ?? 10): \(text.suffix(2000))")
    }
}
