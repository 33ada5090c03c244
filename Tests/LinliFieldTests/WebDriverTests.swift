import Foundation
import LinliTesting
import Testing

/// The WebDriver client against a real headless Chromium: a page on disk,
/// typed into and submitted with the keyboard only.
@Suite(.serialized) struct WebDriverTests {
    static let page = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>WebDriver check</title></head>
        <body>
          <form id="form" onsubmit="return false">
            <label>Name <input id="name" name="name" type="text" autocomplete="off"></label>
            <button id="submit" type="submit"
                    onclick="document.getElementById('out').textContent = document.getElementById('name').value">Save</button>
          </form>
          <p id="out"></p>
          <a id="help" href="#help">Help</a>
        </body></html>
        """

    @Test func typesIntoAFormAndSubmitsItWithTheKeyboard() async throws {
        try #require(WebDriver.isAvailable, "chromium and chromedriver are missing; install chromium and chromium-driver (make deps)")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("linli-webdriver-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("form.html")
        try Self.page.write(to: file, atomically: true, encoding: .utf8)

        let browser = try await WebDriver.start()
        do {
            try await browser.open(file.absoluteString)
            #expect(try await browser.title() == "WebDriver check")
            #expect(try await browser.currentURL() == file.absoluteString)
            #expect(try await browser.pageSource().contains("id=\"out\""))

            let name = try await browser.find("#name")
            #expect(try await name.tagName() == "input")
            #expect(try await name.attribute("type") == "text")
            #expect(try await name.attribute("placeholder") == nil)
            let typed = "张秀英 Zhang 42"
            try await name.sendKeys(typed)
            #expect(try await name.property("value") == typed)
            #expect(try await browser.activeElement().id == name.id)

            // Keyboard only: Tab to the button, Enter presses it.
            try await browser.pressKeys(WebDriver.Key.tab)
            #expect(try await browser.activeElement().attribute("id") == "submit")
            try await browser.pressKeys(WebDriver.Key.enter)
            #expect(try await browser.find("#out").text() == typed)

            // Shift+Tab goes back; clear() empties the field.
            try await browser.pressKeys(WebDriver.Key.shift + WebDriver.Key.tab)
            #expect(try await browser.activeElement().id == name.id)
            try await name.clear()
            #expect(try await name.property("value") == "")

            #expect(try await browser.findAll("form *").count == 3)
            #expect(try await browser.findAll(".absent").isEmpty)
            let missing = await #expect(throws: WebDriverError.self) { try await browser.find("#absent") }
            #expect(missing?.error == "no such element")
            #expect(missing?.description.contains("#absent") == true)

            let png = try await browser.screenshot()
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
            #expect(png.count > 1024)
            let saved = folder.appendingPathComponent("shots/form.png")
            try await browser.saveScreenshot(to: saved)
            #expect(try Data(contentsOf: saved).starts(with: [0x89, 0x50, 0x4E, 0x47]))
        } catch {
            await browser.quit()
            throw error
        }
        await browser.quit()
        await browser.quit()  // a second quit does nothing
        await #expect(throws: WebDriverError.self) { try await browser.title() }
        // Nothing is left: not chromedriver, not Chromium or its helpers,
        // not the profile.
        let port = try #require(browser.endpoint.port)
        #expect(Self.liveProcesses { $0.contains("chromedriver") && $0.contains("--port=\(port)") }.isEmpty)
        #expect(Self.liveProcesses { $0.contains(browser.folder.path) }.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: browser.folder.path))
    }

    /// The processes whose command line (arguments joined by spaces)
    /// passes `test`; zombies have none, so they are not counted.
    static func liveProcesses(_ test: (String) -> Bool) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.compactMap { pid in
            guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/cmdline") else { return nil }
            defer { try? handle.close() }
            let line = String(decoding: handle.readDataToEndOfFile().map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return test(line) ? "\(pid) \(line)" : nil
        }
    }
}
