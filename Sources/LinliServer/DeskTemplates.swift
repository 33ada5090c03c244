import Mustache

/// The desk's pages as Mustache templates in Swift string literals, so the
/// server needs no resource bundle. `{{name}}` escapes for HTML; the only
/// unescaped value (`{{{content}}}` in the layout) is a page these
/// templates rendered.
///
/// Every page is server-rendered, with its CSS inline and nothing loaded
/// from elsewhere (the Content-Security-Policy forbids it). It works with
/// the keyboard alone: real labels, the document order is the tab order,
/// and a visible focus outline.
enum DeskTemplates {
    static let layout = #"""
        <!doctype html>
        <html lang="zh-CN">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>{{title}} · 邻里冲突处理台 Linli desk</title>
        <style>
        :root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0b57d0; --warn: #9a3412; --ok: #166534; --bg: #f6f8fa; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.5 system-ui, "Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", sans-serif; color: var(--ink); background: #fff; }
        header { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: .6rem 1.5rem; background: #12355b; color: #fff; }
        header a { color: #fff; }
        .brand { font-weight: 600; font-size: 1.05rem; text-decoration: none; }
        .brand span { font-weight: 400; opacity: .85; margin-left: .4rem; }
        header nav { display: flex; align-items: center; gap: 1rem; }
        header nav form { margin: 0; }
        header button { background: transparent; color: #fff; border: 1px solid #fff; }
        main { max-width: 78rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
        h1 { font-size: 1.4rem; margin: .6rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.6rem 0 .6rem; }
        a { color: var(--accent); }
        :focus-visible, input:focus, select:focus, textarea:focus, button:focus { outline: 3px solid #f59e0b; outline-offset: 2px; }
        .skip { position: absolute; left: -999px; top: 0; background: #fff; color: var(--accent); padding: .4rem .8rem; }
        .skip:focus { left: .5rem; top: .5rem; z-index: 10; }
        label { font-weight: 600; }
        input[type=text], input[type=password], input[type=number], select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #8c959f; border-radius: 4px; background: #fff; color: var(--ink); }
        textarea { width: 100%; min-height: 4.5rem; }
        button { font: inherit; padding: .4rem 1rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
        button.secondary { background: #fff; color: var(--accent); }
        .flash { padding: .6rem .9rem; border-left: 4px solid var(--ok); background: #ecfdf3; }
        .error { padding: .6rem .9rem; border-left: 4px solid var(--warn); background: #fff4ed; }
        .muted { color: var(--muted); }
        .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em; }
        table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
        caption { text-align: left; color: var(--muted); padding-bottom: .3rem; }
        th, td { text-align: left; vertical-align: top; padding: .45rem .6rem; border-bottom: 1px solid var(--line); }
        thead th { background: var(--bg); font-weight: 600; white-space: nowrap; }
        .filters { display: flex; flex-wrap: wrap; align-items: end; gap: .8rem 1.2rem; padding: .8rem 1rem; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
        .filters div { display: flex; flex-direction: column; gap: .2rem; }
        .filters input[type=number] { width: 8rem; }
        .filters a { padding: .4rem 0; }
        .count { font-weight: 600; }
        .kind { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .85em; background: #e8eefc; color: #173a8a; white-space: nowrap; }
        .kind.refused { background: #fde8e8; color: #8a1c1c; }
        .kind.invariant { background: #fff3d6; color: #7a4a00; }
        .kind.delete_vs_edit { background: #f1e8fd; color: #4c1d95; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; }
        fieldset { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem 1rem; margin: 0 0 1rem; }
        legend { font-weight: 600; padding: 0 .3rem; }
        .values { display: flex; flex-wrap: wrap; gap: 1rem; }
        .value { flex: 1 1 16rem; display: block; border: 2px solid var(--line); border-radius: 6px; padding: .7rem .9rem; font-weight: 400; cursor: pointer; }
        .value:has(input:checked) { border-color: var(--accent); background: #f0f5ff; }
        .value .shown, .value .who { display: block; }
        .value .shown { font-size: 1.15rem; font-weight: 600; margin: .2rem 0 .4rem; word-break: break-all; }
        .value .who { color: var(--muted); font-size: .9em; }
        .badge { font-size: .8em; color: var(--ok); font-weight: 600; }
        .field-row { display: flex; flex-direction: column; gap: .25rem; margin: .6rem 0; }
        .actions { display: flex; gap: .8rem; align-items: center; margin-top: .8rem; }
        .notice { padding: .6rem .9rem; border-left: 4px solid #7c3aed; background: #f5f0ff; }
        </style>
        </head>
        <body>
        <a class="skip" href="#main">跳到正文 · Skip to content</a>
        <header>
        <a class="brand" href="/desk/queue">邻里 · 冲突处理台<span>Linli conflict desk</span></a>
        {{#loggedIn}}
        <nav aria-label="账户 · Account">
        <span>{{user}}</span>
        <form method="post" action="/desk/logout"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">退出 · Log out</button></form>
        </nav>
        {{/loggedIn}}
        </header>
        <main id="main">
        {{#flash}}<p class="flash" role="status">{{flash}}</p>{{/flash}}
        {{#error}}<p class="error" role="alert">{{error}}</p>{{/error}}
        {{{content}}}
        </main>
        </body>
        </html>
        """#

    static let login = #"""
        <h1>登录 · Log in</h1>
        <p class="muted">街道工作人员使用本人的账户登录；签名密钥只在登录期间解锁。 · Street-office staff log in with their own account; the signing key is unlocked only while logged in.</p>
        <form method="post" action="/desk/login" autocomplete="off">
        <input type="hidden" name="login_csrf" value="{{loginToken}}">
        <div class="field-row">
        <label for="user">用户名 · User name</label>
        <input type="text" id="user" name="user" value="{{userName}}" autofocus required autocapitalize="none" spellcheck="false" size="28">
        </div>
        <div class="field-row">
        <label for="password">密码 · Password</label>
        <input type="password" id="password" name="password" required size="28">
        </div>
        <div class="actions"><button type="submit">登录 · Log in</button></div>
        </form>
        """#

    static let queue = #"""
        <h1>待处理 · Review queue</h1>
        <form method="get" action="/desk/queue" class="filters" aria-label="筛选 · Filter">
        <div><label for="f-grid">网格 · Grid</label>
        <select id="f-grid" name="grid"><option value="">全部 · All</option>{{#grids}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/grids}}</select></div>
        <div><label for="f-table">表 · Table</label>
        <select id="f-table" name="table"><option value="">全部 · All</option>{{#tables}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/tables}}</select></div>
        <div><label for="f-kind">类别 · Kind</label>
        <select id="f-kind" name="kind"><option value="">全部 · All</option>{{#kinds}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/kinds}}</select></div>
        <div><label for="f-older">至少等待（小时） · At least (hours) old</label>
        <input type="number" id="f-older" name="older_hours" min="0" step="1" value="{{olderHours}}" size="6"></div>
        <div><button type="submit">筛选 · Filter</button></div>
        <div><a href="/desk/queue">清除筛选 · Clear</a></div>
        </form>
        <p class="count" id="count">共 {{count}} 项 · {{count}} items{{#truncated}}（显示最早的 {{shown}} 项 · showing the oldest {{shown}}; narrow the filter）{{/truncated}}</p>
        {{#hasItems}}
        <table id="queue">
        <caption>最早的在前 · Oldest first</caption>
        <thead><tr><th scope="col">类别 · Kind</th><th scope="col">网格 · Grid</th><th scope="col">表 · Table</th><th scope="col">记录 · Record</th><th scope="col">字段 · Field</th><th scope="col">摘要 · Summary</th><th scope="col">已等待 · Age</th></tr></thead>
        <tbody>
        {{#items}}
        <tr data-item="{{id}}"><td><span class="kind {{kind}}">{{kindLabel}}</span></td><td>{{grid}}</td><td>{{table}}</td><td class="mono">{{record}}</td><td>{{field}}</td><td><a href="/desk/item/{{id}}">{{summary}}</a></td><td>{{age}}</td></tr>
        {{/items}}
        </tbody>
        </table>
        {{/hasItems}}
        {{^hasItems}}<p id="empty">没有待处理的项目。 · Nothing waits for review.</p>{{/hasItems}}
        <p><a href="/desk/bulk{{bulkQuery}}">批量处理同一字段的冲突 · Bulk resolution of one field's conflicts</a></p>
        """#

    static let item = #"""
        <p><a href="/desk/queue">← 返回待处理 · Back to the queue</a></p>
        <h1><span class="kind {{kind}}">{{kindLabel}}</span> {{heading}}</h1>
        <dl class="facts">
        <dt>网格 · Grid</dt><dd>{{grid}}</dd>
        <dt>范围 · Scope</dt><dd class="mono">{{scope}}</dd>
        {{#table}}<dt>表 · Table</dt><dd>{{table}}</dd>{{/table}}
        {{#record}}<dt>记录 · Record</dt><dd class="mono">{{record}}</dd>{{/record}}
        {{#field}}<dt>字段 · Field</dt><dd>{{field}}</dd>{{/field}}
        <dt>发现于 · Detected</dt><dd>{{detected}}</dd>
        <dt>编号 · Item</dt><dd class="mono">{{id}}</dd>
        </dl>

        {{#conflict}}
        {{#deleteVersusEdit}}
        <p class="notice" id="delete-vs-edit">此记录已被删除，同时有人修改了这个字段。保留“空（删除）”则记录仍为删除；保留修改的值则记录恢复。 · This record was deleted while someone else changed this field. Keeping the empty (deleted) value keeps the record deleted; keeping the edit brings the record back.</p>
        {{#deletion}}<p class="muted">删除 · Deleted by {{user}}（设备 · device <span class="mono">{{device}}</span>）{{time}}</p>{{/deletion}}
        {{/deleteVersusEdit}}
        <form method="post" action="/desk/item/{{id}}/resolve">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="version" value="{{version}}">
        <input type="hidden" name="action" value="choose">
        <fieldset>
        <legend>冲突 · Conflict：选择要保留的值 · choose the value to keep</legend>
        <div class="values">
        {{#values}}
        <label class="value" for="choice-{{index}}">
        <input type="radio" id="choice-{{index}}" name="choice" value="{{index}}" required{{#checked}} checked{{/checked}}>
        值 {{number}} · Value {{number}} {{#shown}}<span class="badge">目前显示 · shown now</span>{{/shown}}
        <span class="shown">{{text}}</span>
        <span class="who">{{user}} · 设备 device <span class="mono">{{device}}</span><br>{{time}}</span>
        </label>
        {{/values}}
        <label class="value" for="choice-corrected">
        <input type="radio" id="choice-corrected" name="choice" value="corrected"{{#correctedChecked}} checked{{/correctedChecked}}>
        更正值 · A corrected value
        <span class="field-row"><span class="muted">{{typeHint}}</span>
        <input type="text" id="corrected" name="corrected" value="{{corrected}}" aria-label="更正值 · Corrected value" size="24"></span>
        </label>
        </div>
        </fieldset>
        <div class="field-row">
        <label for="note">说明（必填） · Note (required): why this value</label>
        <textarea id="note" name="note" required maxlength="{{noteMax}}">{{note}}</textarea>
        </div>
        <div class="actions"><button type="submit" id="resolve">提交 · Resolve</button></div>
        </form>
        {{/conflict}}

        {{#refused}}
        <h2>被拒绝的变更 · Refused change set</h2>
        <dl class="facts">
        <dt>原因 · Reason</dt><dd><span class="mono">{{code}}</span>: {{message}}</dd>
        <dt>提交人 · Author</dt><dd>{{author}}</dd>
        <dt>设备 · Device</dt><dd class="mono">{{device}}</dd>
        <dt>序号 · Seq</dt><dd>{{seq}}</dd>
        <dt>收到 · Received</dt><dd>{{received}}</dd>
        </dl>
        <table id="writes">
        <caption>它要写入的内容 · What it would have written</caption>
        <thead><tr><th scope="col">表 · Table</th><th scope="col">记录 · Record</th><th scope="col">字段 · Field</th><th scope="col">值 · Value</th></tr></thead>
        <tbody>{{#writes}}<tr><td>{{table}}</td><td class="mono">{{record}}</td><td>{{field}}</td><td>{{text}}</td></tr>{{/writes}}</tbody>
        </table>
        <form method="post" action="/desk/item/{{id}}/resolve">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="version" value="{{version}}">
        <input type="hidden" name="action" value="dismiss">
        <fieldset>
        <legend>不予采用 · Dismiss</legend>
        <div class="field-row">
        <label for="note-dismiss">说明（必填） · Note (required)</label>
        <textarea id="note-dismiss" name="note" required maxlength="{{noteMax}}">{{note}}</textarea>
        </div>
        <div class="actions"><button type="submit" id="dismiss">不予采用 · Dismiss</button></div>
        </fieldset>
        </form>
        {{#deletes}}
        <p class="notice" id="refused-deletion">这是一条被拒绝的删除，不能重新提交。如确需删除，请核实后自行删除该记录。 · This is a refused deletion and cannot be resubmitted. If the record should go, check it and delete it yourself.</p>
        {{/deletes}}
        {{#canResubmit}}
        <form method="post" action="/desk/item/{{id}}/resolve">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="version" value="{{version}}">
        <input type="hidden" name="action" value="resubmit">
        <fieldset>
        <legend>更正后重新提交 · Resubmit with corrections</legend>
        <p class="muted">以提交人的名义写入以下字段；改动的字段按更正后的值写入。 · The fields are written again on the author's behalf; changed ones with the corrected value.</p>
        {{#fields}}
        <div class="field-row">
        <label for="fix-{{index}}">{{label}}</label>
        <span class="muted">{{typeHint}}</span>
        <input type="text" id="fix-{{index}}" name="fix.{{name}}" value="{{text}}" size="32">
        </div>
        {{/fields}}
        <div class="field-row">
        <label for="note-resubmit">说明（必填） · Note (required)</label>
        <textarea id="note-resubmit" name="note" required maxlength="{{noteMax}}">{{note}}</textarea>
        </div>
        <div class="actions"><button type="submit" id="resubmit">重新提交 · Resubmit</button></div>
        </fieldset>
        </form>
        {{/canResubmit}}
        {{/refused}}

        {{#invariant}}
        <h2>规则 · Rule</h2>
        <p class="notice" id="explanation">{{explanation}}</p>
        <table id="records">
        <caption>涉及的记录 · The records involved</caption>
        <thead><tr><th scope="col">表 · Table</th><th scope="col">记录 · Record</th><th scope="col">范围 · Scope</th><th scope="col">字段 · Field</th><th scope="col">值 · Values</th></tr></thead>
        <tbody>{{#rows}}<tr><td>{{table}}</td><td class="mono">{{record}}</td><td class="mono">{{scope}}</td><td>{{field}}</td><td>{{values}}</td></tr>{{/rows}}</tbody>
        </table>
        <form method="post" action="/desk/item/{{id}}/resolve">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="version" value="{{version}}">
        <input type="hidden" name="action" value="edit">
        <fieldset>
        <legend>修改一条记录的字段 · Correct a field of one record</legend>
        <div class="field-row">
        <label for="target">记录与字段 · Record and field</label>
        <select id="target" name="target" required>{{#targets}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/targets}}</select>
        </div>
        <div class="field-row">
        <label for="value">新值 · New value</label>
        <span class="muted">留空则清除该字段 · leave empty to clear the field</span>
        <input type="text" id="value" name="value" value="{{value}}" size="32">
        </div>
        <div class="field-row">
        <label for="note-edit">说明（必填） · Note (required)</label>
        <textarea id="note-edit" name="note" required maxlength="{{noteMax}}">{{note}}</textarea>
        </div>
        <div class="actions"><button type="submit" id="edit">提交 · Resolve</button></div>
        </fieldset>
        </form>
        {{/invariant}}

        {{#hasHistory}}
        <h2>字段历史 · History of the field</h2>
        <table id="history">
        <caption>最早的在前 · Oldest first</caption>
        <thead><tr><th scope="col">时间 · Time</th><th scope="col">人员 · User</th><th scope="col">设备 · Device</th><th scope="col">值 · Value</th><th scope="col">替换 · Replaced</th><th scope="col">仍有效 · Survives</th></tr></thead>
        <tbody>{{#history}}<tr><td>{{time}}</td><td>{{user}}</td><td class="mono">{{device}}</td><td>{{text}}</td><td>{{replaced}}</td><td>{{#survives}}是 · yes{{/survives}}{{^survives}}否 · no{{/survives}}</td></tr>{{/history}}</tbody>
        </table>
        {{/hasHistory}}
        """#

    static let bulk = #"""
        <p><a href="/desk/queue">← 返回待处理 · Back to the queue</a></p>
        <h1>批量处理 · Bulk resolution</h1>
        <p class="muted">对一个网格中同一字段的所有冲突，保留最新写入的值（“最新者优先”）。删除与修改的冲突不在此列，请逐项处理。 · For every conflict of one field in one grid, keep the value written last (“newest wins”). Deletes racing edits are left out: settle those one by one.</p>
        {{#choosing}}
        <table id="groups">
        <caption>按网格、表和字段分组的冲突 · Open conflicts by grid, table and field</caption>
        <thead><tr><th scope="col">网格 · Grid</th><th scope="col">表 · Table</th><th scope="col">字段 · Field</th><th scope="col">数量 · Count</th></tr></thead>
        <tbody>{{#groups}}<tr><td>{{grid}}</td><td>{{tableLabel}}</td><td><a href="/desk/bulk?grid={{gridQuery}}&amp;table={{tableQuery}}&amp;field={{fieldQuery}}">{{fieldLabel}}</a></td><td>{{count}}</td></tr>{{/groups}}</tbody>
        </table>
        {{^groups}}<p id="empty">没有可批量处理的冲突。 · No conflicts to resolve in bulk.</p>{{/groups}}
        {{/choosing}}
        {{#previewing}}
        <h2>{{grid}} · {{tableLabel}} · {{fieldLabel}}</h2>
        <p class="count" id="count">{{count}} 个冲突 · {{count}} conflicts{{#truncated}}（本次处理最早的 {{shown}} 个 · this round takes the oldest {{shown}}）{{/truncated}}</p>
        <table id="preview">
        <caption>预览：将保留的值 · Preview: the value each would keep</caption>
        <thead><tr><th scope="col">记录 · Record</th><th scope="col">竞争的值 · Competing values</th><th scope="col">将保留 · Keeps (newest)</th></tr></thead>
        <tbody>{{#items}}<tr><td class="mono"><a href="/desk/item/{{id}}">{{record}}</a></td><td>{{competing}}</td><td><strong>{{newest}}</strong></td></tr>{{/items}}</tbody>
        </table>
        {{#hasItems}}
        <form method="post" action="/desk/bulk">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="grid" value="{{grid}}">
        <input type="hidden" name="table" value="{{table}}">
        <input type="hidden" name="field" value="{{field}}">
        <input type="hidden" name="items" value="{{itemList}}">
        <div class="field-row">
        <label for="note">说明（必填） · Note (required)</label>
        <textarea id="note" name="note" required maxlength="{{noteMax}}">{{note}}</textarea>
        </div>
        <div class="actions"><button type="submit" id="apply">全部采用最新值 · Apply newest wins to {{shown}}</button></div>
        </form>
        {{/hasItems}}
        {{/previewing}}
        """#

    static let message = #"""
        <h1>{{heading}}</h1>
        <p>{{text}}</p>
        <p><a href="{{link}}">{{linkText}}</a></p>
        """#
}
