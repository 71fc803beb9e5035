// Header checks nginx does not make itself, for gunicorn, which refuses both with an HTML page.

// RFC 9110 5.5: a field value holds no control character but HTAB (gunicorn's own test).
var CONTROL_CHARACTER = /[\x00-\x08\x0a-\x1f\x7f]/;
// gunicorn takes at most 100 header lines; nginx adds up to four of its own (Host, Connection,
// X-Forwarded-For, X-Forwarded-Proto; Content-Length for a chunked body replaces Transfer-Encoding).
var MOST_HEADER_LINES = 96;

// "control", "too_many" or "" for a request whose headers gunicorn would take.
function header_problem(r) {
    var headers = r.rawHeadersIn;
    if (headers.length > MOST_HEADER_LINES) {
        return "too_many";
    }
    for (var i = 0; i < headers.length; i++) {
        if (CONTROL_CHARACTER.test(headers[i][1])) {
            return "control";
        }
    }
    return "";
}

export default { header_problem };
