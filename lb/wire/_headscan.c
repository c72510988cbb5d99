/* lb.wire._headscan: the quick pass of lb's HTTP head parsers, in C.
 *
 * Six functions, each answering exactly what the pure build's Python (regular
 * expressions, bytes methods) of lb.wire answers, one pass over the head:
 *
 *   scan_request(buf, pos, stop)   as lb.wire.http._regex_scan_request
 *   scan_response(buf, start, stop) as lb.wire.response_head._regex_scan_response
 *   drop_hop_lines(raw)            as lb.wire.http1._regex_without_connection_headers
 *   insert_line(raw, line)         as lb.wire.http1._py_with_header
 *   span_joined(buf, start, end, tail) as lb.wire.http1._py_span_joined
 *   cookie_in(value, name)         as lb.wire.http._py_cookie_in
 *
 * A property test holds each to its regex on generated and hostile bytes
 * (tests/unit/wire/test_headscan.py). What they do not decide (None) goes to the
 * full check in Python, as in the pure build, which gives the reason.
 *
 * Pure and bounded: no I/O, no state; it reads only buf[pos:stop] (the regex
 * `match(buf, pos, endpos)` bounds) and each byte there at most twice. bytes
 * are read in place; any other bytes-like object through the buffer protocol,
 * released before the answer is returned. Built only by the compiled build (LB_COMPILE=1, setup.py).
 */

#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_REQUEST_LINES 100  /* lb.wire.http.MAX_HEADER_LINES */
#define MAX_RESPONSE_LINES 199 /* lb.wire.response_head._MAX_HEADER_LINES - 1 */

static unsigned char TCHAR[256];  /* RFC 9110 5.6.2 token characters */
static unsigned char VCHAR[256];  /* field value bytes: HT, 0x20-0x7e, 0x80-0xff */
static unsigned char TARGET[256]; /* request-target bytes: not 0x00-0x20 or 0x7f */
static unsigned char LOWER[256];  /* ASCII lower case; every other byte as it is */

static void init_tables(void)
{
    const char *extra = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        TCHAR[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        VCHAR[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
        TARGET[c] = c > 0x20 && c != 0x7f;
        LOWER[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    for (; *extra; extra++) {
        TCHAR[(unsigned char)*extra] = 1;
    }
}

/* The three positional arguments (a bytes-like object, two ints), the buffer held;
 * the ints clamped as re's match(string, pos, endpos) clamps them. 0, or -1 with an
 * exception set. */
static int parse_args(PyObject *const *args, Py_ssize_t nargs, const char *name,
                      Py_buffer *view, Py_ssize_t *pos, Py_ssize_t *stop)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes 3 positional arguments", name);
        return -1;
    }
    *pos = PyLong_AsSsize_t(args[1]);
    if (*pos == -1 && PyErr_Occurred()) {
        return -1;
    }
    *stop = PyLong_AsSsize_t(args[2]);
    if (*stop == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (PyBytes_CheckExact(args[0])) {
        /* the usual buffer: immutable, read in place without the buffer protocol (no
         * owner in the view: PyBuffer_Release does nothing with it) */
        view->buf = PyBytes_AS_STRING(args[0]);
        view->len = PyBytes_GET_SIZE(args[0]);
        view->obj = NULL;
    }
    else if (PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (*stop > view->len) {
        *stop = view->len;
    }
    if (*stop < 0) {
        *stop = 0;
    }
    if (*pos < 0) {
        *pos = 0;
    }
    return 0;
}

/* Where the run of bytes of `table` starting at p ends (p itself if none). */
static inline Py_ssize_t run_of(const unsigned char *b, Py_ssize_t p, Py_ssize_t stop,
                                const unsigned char *table)
{
    while (p < stop && table[b[p]]) {
        p++;
    }
    return p;
}

/* run_of(b, p, stop, VCHAR), eight bytes at a time: a word goes by whole unless it holds
 * a byte below 0x20 or 0x7f (an HT, which VCHAR allows, included: then it goes byte by
 * byte through that word). Each test is exact for a word as a whole: (x - 0x20..) & ~x
 * & 0x80.. is nonzero if and only if some byte of x is below 0x20, and the same with
 * x ^ 0x7f.. and 0x01.. if and only if some byte is 0x7f. Reads only b[p:stop]. */
static inline Py_ssize_t vchar_run(const unsigned char *b, Py_ssize_t p, Py_ssize_t stop)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    for (;;) {
        while (stop - p >= 8) {
            uint64_t x, y;
            memcpy(&x, b + p, 8);
            y = x ^ (ones * 0x7f);
            if (((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs)) {
                break;
            }
            p += 8;
        }
        Py_ssize_t limit = stop - p < 8 ? stop : p + 8;
        while (p < limit && VCHAR[b[p]]) {
            p++;
        }
        if (p < limit || p == stop) {
            return p;
        }
    }
}

/* The ':' that ends the name of a header line starting at p (CRLF, a token, ':'),
 * or -1 if no header line starts there. */
static inline Py_ssize_t field_colon(const unsigned char *b, Py_ssize_t p, Py_ssize_t stop)
{
    Py_ssize_t q;
    if (stop - p < 3 || b[p] != '\r' || b[p + 1] != '\n' || !TCHAR[b[p + 2]]) {
        return -1;
    }
    q = run_of(b, p + 2, stop, TCHAR);
    return q < stop && b[q] == ':' ? q : -1;
}

/* A field's value: from after the ':' at `at` past leading SP/HT, to `end`. */
static inline Py_ssize_t value_start(const unsigned char *b, Py_ssize_t at, Py_ssize_t end)
{
    while (at < end && (b[at] == ' ' || b[at] == '\t')) {
        at++;
    }
    return at;
}

static PyObject *pair(PyObject *first, PyObject *second)
{
    PyObject *tuple;
    if (first == NULL || second == NULL) {
        Py_XDECREF(first);
        Py_XDECREF(second);
        return NULL;
    }
    tuple = PyTuple_New(2);
    if (tuple == NULL) {
        Py_DECREF(first);
        Py_DECREF(second);
        return NULL;
    }
    PyTuple_SET_ITEM(tuple, 0, first);
    PyTuple_SET_ITEM(tuple, 1, second);
    return tuple;
}

/* The list of (name, value) pairs of `n` recorded lines, each made by `make` (str or
 * bytes), the value without its leading SP/HT; NULL with an exception set. */
static PyObject *field_list(const unsigned char *b, const Py_ssize_t *names,
                            const Py_ssize_t *colons, const Py_ssize_t *ends, Py_ssize_t n,
                            PyObject *(*make)(const char *, Py_ssize_t))
{
    PyObject *fields = PyList_New(n);
    if (fields == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t at = value_start(b, colons[i] + 1, ends[i]);
        PyObject *field = pair(make((const char *)b + names[i], colons[i] - names[i]),
                               make((const char *)b + at, ends[i] - at));
        if (field == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        PyList_SET_ITEM(fields, i, field);
    }
    return fields;
}

static PyObject *latin1(const char *text, Py_ssize_t size)
{
    return PyUnicode_DecodeLatin1(text, size, NULL);
}

/* scan_request(buf, pos, stop) -> (length, method, target, minor, headers) | None
 *
 * The head _FAST_HEAD matches at buf[pos:stop]: a token method, SP, a target of
 * bytes other than 0x00-0x20 and 0x7f, SP, HTTP/1.0 or HTTP/1.1, then at most 100
 * header lines (CRLF, a token, ':', value bytes not ending in SP/HT), then CRLFCRLF.
 * length is the index after that CRLFCRLF; method and target are str (latin-1);
 * headers are the (name, value) str pairs _FAST_FIELD finds, the value without its
 * leading SP/HT. */
static PyObject *scan_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, stop, p, q, target_at, target_end, lines = 0;
    Py_ssize_t names[MAX_REQUEST_LINES], colons[MAX_REQUEST_LINES], ends[MAX_REQUEST_LINES];
    const unsigned char *b;
    PyObject *headers = NULL, *answer = NULL, *item;
    int minor;
    (void)module;

    if (parse_args(args, nargs, "scan_request", &view, &pos, &stop) < 0) {
        return NULL;
    }
    b = (const unsigned char *)view.buf;
    p = run_of(b, pos, stop, TCHAR);
    if (p == pos || p >= stop || b[p] != ' ') {
        goto no;
    }
    target_at = ++p;
    p = run_of(b, p, stop, TARGET);
    target_end = p;
    if (p == target_at || stop - p < 9 || memcmp(b + p, " HTTP/1.", 8) != 0
        || (b[p + 8] != '0' && b[p + 8] != '1')) {
        goto no;
    }
    minor = b[p + 8] - '0';
    p += 9;
    while (lines < MAX_REQUEST_LINES) {
        /* one header line, or the repetition ends where this one fails */
        q = field_colon(b, p, stop);
        if (q < 0) {
            break;
        }
        names[lines] = p + 2;
        colons[lines] = q;
        q = vchar_run(b, q + 1, stop);
        if (b[q - 1] == ' ' || b[q - 1] == '\t') {
            break; /* (?<![ \t]): a value ends in neither */
        }
        ends[lines] = q;
        lines++;
        p = q;
    }
    if (stop - p < 4 || memcmp(b + p, "\r\n\r\n", 4) != 0) {
        goto no;
    }
    headers = field_list(b, names, colons, ends, lines, latin1);
    if (headers == NULL) {
        goto fail;
    }
    answer = PyTuple_New(5);
    if (answer == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 4, headers); /* the tuple owns it from here */
    headers = NULL;
    item = PyLong_FromSsize_t(p + 4);
    if (item == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 0, item);
    item = PyUnicode_DecodeLatin1((const char *)b + pos, target_at - 1 - pos, NULL);
    if (item == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 1, item);
    item = PyUnicode_DecodeLatin1((const char *)b + target_at, target_end - target_at, NULL);
    if (item == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 2, item);
    item = PyLong_FromLong(minor);
    if (item == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 3, item);
    PyBuffer_Release(&view);
    return answer;
no:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(headers);
    Py_XDECREF(answer);
    PyBuffer_Release(&view);
    return NULL;
}

/* The kind of a response header line framing depends on (_FAST_FRAMING's
 * alternation, any ASCII case), as scan_response's kinds give it: 'L' Content-Length,
 * 'T' Transfer-Encoding, 'C' Connection, 'S' Set-Cookie, 'K' Keep-Alive,
 * 'P' Proxy-Connection; 0 for any other name. */
static int same_lowered(const unsigned char *name, const char *want, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        if (LOWER[name[i]] != (unsigned char)want[i]) {
            return 0;
        }
    }
    return 1;
}

static char framing_kind(const unsigned char *name, Py_ssize_t size)
{
    switch (size) {
    case 10:
        return same_lowered(name, "connection", 10)   ? 'C'
               : same_lowered(name, "set-cookie", 10) ? 'S'
               : same_lowered(name, "keep-alive", 10) ? 'K'
                                                      : 0;
    case 14:
        return same_lowered(name, "content-length", 14) ? 'L' : 0;
    case 16:
        return same_lowered(name, "proxy-connection", 16) ? 'P' : 0;
    case 17:
        return same_lowered(name, "transfer-encoding", 17) ? 'T' : 0;
    default:
        return 0;
    }
}

/* The usual Connection values, made once: a response's value is one of them, shared */
static PyObject *KEEP_ALIVE; /* b"keep-alive" */
static PyObject *CLOSE;      /* b"close" */

/* bytes of b[at:end]: a shared object for the usual Connection values (bytes compare by
 * value, so only the allocation differs) */
static PyObject *value_bytes(const unsigned char *b, Py_ssize_t at, Py_ssize_t end)
{
    Py_ssize_t size = end - at;
    if (size == 10 && memcmp(b + at, "keep-alive", 10) == 0) {
        Py_INCREF(KEEP_ALIVE);
        return KEEP_ALIVE;
    }
    if (size == 5 && memcmp(b + at, "close", 5) == 0) {
        Py_INCREF(CLOSE);
        return CLOSE;
    }
    return PyBytes_FromStringAndSize((const char *)b + at, size);
}

/* scan_response(buf, start, stop) -> (end, kinds, values) | None
 *
 * The head _FAST_RESPONSE matches at buf[start:stop]: HTTP/1.0 or HTTP/1.1, SP, a
 * status 100-599, optionally SP and a reason of value bytes, at most 199 header lines
 * (CRLF, a token, ':', value bytes), then CRLFCRLF. end is the index after that
 * CRLFCRLF. The Content-Length, Transfer-Encoding, Connection, Set-Cookie, Keep-Alive
 * and Proxy-Connection lines (any case), in order, as _FAST_FRAMING's findall finds
 * them: kinds holds one byte per line, its kind (framing_kind), values its value
 * without leading SP/HT (trailing SP/HT kept). No object per name, no pair per line. */
static PyObject *scan_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, stop, p, q, lines = 0, found = 0;
    Py_ssize_t colons[MAX_RESPONSE_LINES], ends[MAX_RESPONSE_LINES];
    char kinds[MAX_RESPONSE_LINES];
    const unsigned char *b;
    PyObject *values = NULL, *answer = NULL, *item;
    (void)module;

    if (parse_args(args, nargs, "scan_response", &view, &start, &stop) < 0) {
        return NULL;
    }
    b = (const unsigned char *)view.buf;
    p = start;
    if (stop - p < 12 || memcmp(b + p, "HTTP/1.", 7) != 0 || (b[p + 7] != '0' && b[p + 7] != '1')
        || b[p + 8] != ' ' || b[p + 9] < '1' || b[p + 9] > '5' || b[p + 10] < '0'
        || b[p + 10] > '9' || b[p + 11] < '0' || b[p + 11] > '9') {
        goto no;
    }
    p += 12;
    if (p < stop && b[p] == ' ') {
        p = vchar_run(b, p + 1, stop);
    }
    while (lines < MAX_RESPONSE_LINES) {
        q = field_colon(b, p, stop);
        if (q < 0) {
            break;
        }
        lines++;
        char kind = framing_kind(b + p + 2, q - (p + 2));
        p = vchar_run(b, q + 1, stop);
        if (kind) {
            kinds[found] = kind;
            colons[found] = q;
            ends[found++] = p;
        }
    }
    if (stop - p < 4 || memcmp(b + p, "\r\n\r\n", 4) != 0) {
        goto no;
    }
    answer = PyTuple_New(3);
    if (answer == NULL) {
        goto fail;
    }
    item = PyLong_FromSsize_t(p + 4);
    if (item == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 0, item);
    item = PyBytes_FromStringAndSize(kinds, found);
    if (item == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 1, item);
    values = PyList_New(found);
    if (values == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(answer, 2, values); /* the tuple owns it from here */
    for (Py_ssize_t i = 0; i < found; i++) {
        item = value_bytes(b, value_start(b, colons[i] + 1, ends[i]), ends[i]);
        if (item == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(values, i, item);
    }
    PyBuffer_Release(&view);
    return answer;
no:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(answer); /* a list not yet filled holds NULLs: list_dealloc skips them */
    PyBuffer_Release(&view);
    return NULL;
}

/* The length of "connection:", "keep-alive:" or "proxy-connection:" (any ASCII case)
 * at b[p:stop], 0 when none is there. */
static Py_ssize_t hop_name_at(const unsigned char *b, Py_ssize_t p, Py_ssize_t stop)
{
    static const char *const names[] = {"connection:", "keep-alive:", "proxy-connection:"};
    static const Py_ssize_t lengths[] = {11, 11, 17};
    if (p >= stop) {
        return 0;
    }
    unsigned char first = LOWER[b[p]];
    if (first != 'c' && first != 'k' && first != 'p') {
        return 0; /* the usual line: one look */
    }
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        const char *name = names[k];
        Py_ssize_t n = lengths[k];
        if (stop - p < n || first != (unsigned char)name[0]) {
            continue;
        }
        Py_ssize_t i = 1;
        while (i < n && LOWER[b[p + i]] == (unsigned char)name[i]) {
            i++;
        }
        if (i == n) {
            return n;
        }
    }
    return 0;
}

/* Where the next match of \r\n(?:connection|keep-alive|proxy-connection):[^\r\n]*
 * (ASCII case ignored) at or after `from` starts, -1 if none; *end is where it ends. */
static Py_ssize_t next_hop_line(const unsigned char *b, Py_ssize_t from, Py_ssize_t stop,
                                Py_ssize_t *end)
{
    Py_ssize_t p = from;
    while (p + 1 < stop) {
        const unsigned char *cr = memchr(b + p, '\r', (size_t)(stop - 1 - p));
        if (cr == NULL) {
            return -1;
        }
        p = cr - b;
        if (b[p + 1] == '\n') {
            Py_ssize_t n = hop_name_at(b, p + 2, stop);
            if (n) {
                Py_ssize_t e = p + 2 + n;
                while (e < stop && b[e] != '\r' && b[e] != '\n') {
                    e++;
                }
                *end = e;
                return p;
            }
        }
        p++;
    }
    return -1;
}

/* drop_hop_lines(raw: bytes) -> bytes: raw without its Connection, Keep-Alive and
 * Proxy-Connection lines, each with the CRLF before it (the same object when none is
 * there); what re.sub of the pattern above answers. */
static PyObject *drop_hop_lines(PyObject *self, PyObject *raw)
{
    (void)self;
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "drop_hop_lines() takes bytes");
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(raw);
    Py_ssize_t size = PyBytes_GET_SIZE(raw);
    Py_ssize_t end = 0;
    Py_ssize_t at = next_hop_line(b, 0, size, &end);
    if (at < 0) {
        Py_INCREF(raw);
        return raw;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(out);
    Py_ssize_t written = 0;
    Py_ssize_t pos = 0;
    while (at >= 0) {
        memcpy(o + written, b + pos, (size_t)(at - pos));
        written += at - pos;
        pos = end;
        at = next_hop_line(b, pos, size, &end);
    }
    memcpy(o + written, b + pos, (size_t)(size - pos));
    written += size - pos;
    if (_PyBytes_Resize(&out, written) < 0) {
        return NULL;
    }
    return out;
}

/* insert_line(raw: bytes, line: bytes) -> bytes: raw with `line` after its first line
 * (the CRLF pairs it starts with skipped); ValueError when that line has no CRLF. */
static PyObject *insert_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "insert_line() takes two bytes");
        return NULL;
    }
    const char *b = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    const char *line = PyBytes_AS_STRING(args[1]);
    Py_ssize_t length = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t p = 0;
    while (p + 1 < size && b[p] == '\r' && b[p + 1] == '\n') {
        p += 2;
    }
    Py_ssize_t eol = -1;
    while (p + 1 < size) {
        const char *cr = memchr(b + p, '\r', (size_t)(size - 1 - p));
        if (cr == NULL) {
            break;
        }
        p = cr - b;
        if (b[p + 1] == '\n') {
            eol = p + 2;
            break;
        }
        p++;
    }
    if (eol < 0) {
        PyErr_SetString(PyExc_ValueError, "a head without a line end");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size + length);
    if (out == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(out);
    memcpy(o, b, (size_t)eol);
    memcpy(o + eol, line, (size_t)length);
    memcpy(o + eol + length, b + eol, (size_t)(size - eol));
    return out;
}

/* span_joined(buf, start, end, tail: bytes) -> bytes: buf[start:end] + tail as one new
 * bytes object, buf any bytes-like object (a connection's bytearray); ValueError unless
 * 0 <= start <= end <= len(buf). One copy of each part, no slice object made. */
static PyObject *span_joined(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end;
    PyObject *out;
    (void)self;
    if (nargs != 4 || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "span_joined() takes a buffer, two ints and bytes");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (start < 0 || start > end || end > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "span_joined(): not 0 <= start <= end <= len(buf)");
        return NULL;
    }
    Py_ssize_t tail = PyBytes_GET_SIZE(args[3]);
    out = PyBytes_FromStringAndSize(NULL, end - start + tail);
    if (out != NULL) {
        char *o = PyBytes_AS_STRING(out);
        memcpy(o, (const char *)view.buf + start, (size_t)(end - start));
        memcpy(o + (end - start), PyBytes_AS_STRING(args[3]), (size_t)tail);
    }
    PyBuffer_Release(&view);
    return out;
}

/* All of value[a:b] is SP or HT (true when empty). */
static int blank_between(PyObject *value, int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    (void)value;
    for (; a < b; a++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, a);
        if (c != ' ' && c != '\t') {
            return 0;
        }
    }
    return 1;
}

static inline int blank(char c)
{
    return c == ' ' || c == '\t';
}

/* cookie_in's search when value and name are both one byte a character (a header
 * value is latin-1 text): memchr and memmem instead of the str API's calls. */
static PyObject *cookie_in_latin1(PyObject *value, const char *v, Py_ssize_t n,
                                  const char *name, Py_ssize_t size)
{
    const char *hit = memmem(v, (size_t)n, name, (size_t)size);
    while (hit != NULL) {
        Py_ssize_t at = hit - v, after = at + size, end = n, eq = -1, p;
        const char *semi = memchr(v + after, ';', (size_t)(n - after));
        if (semi != NULL) {
            end = semi - v;
        }
        for (p = after; p < end; p++) {
            if (v[p] == '=') {
                eq = p;
                break;
            }
            if (!blank(v[p])) {
                break; /* something else stands before any '=': not this pair's name */
            }
        }
        if (eq >= 0) {
            Py_ssize_t start = at;
            while (start > 0 && v[start - 1] != ';' && blank(v[start - 1])) {
                start--;
            }
            if (start == 0 || v[start - 1] == ';') {
                Py_ssize_t a = eq + 1, b = end;
                while (a < b && blank(v[a])) {
                    a++;
                }
                while (b > a && blank(v[b - 1])) {
                    b--;
                }
                return PyUnicode_Substring(value, a, b);
            }
        }
        if (end + 1 > n) {
            break;
        }
        hit = memmem(v + end + 1, (size_t)(n - end - 1), name, (size_t)size);
    }
    Py_RETURN_NONE;
}

/* cookie_in(value: str, name: str) -> str | None: the value of the first pair called
 * name in one Cookie field's value, SP/HT around it stripped (lb.wire.http._py_cookie_in,
 * the same search step by step, each with the str C API, no method call). */
static PyObject *cookie_in(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "cookie_in() takes two str");
        return NULL;
    }
    PyObject *value = args[0], *name = args[1];
    if (PyUnicode_READY(value) < 0 || PyUnicode_READY(name) < 0) {
        return NULL; /* a legacy str of the old C API, not yet ready, and it failed */
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(value), size = PyUnicode_GET_LENGTH(name);
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    if (size == 0) {
        Py_RETURN_NONE;
    }
    if (kind == PyUnicode_1BYTE_KIND && PyUnicode_KIND(name) == PyUnicode_1BYTE_KIND) {
        return cookie_in_latin1(value, (const char *)data, n,
                                (const char *)PyUnicode_DATA(name), size);
    }
    Py_ssize_t at = PyUnicode_Find(value, name, 0, n, 1);
    while (at >= 0) {
        Py_ssize_t after = at + size;
        Py_ssize_t end = PyUnicode_FindChar(value, ';', after, n, 1);
        if (end == -2) {
            return NULL;
        }
        if (end < 0) {
            end = n;
        }
        Py_ssize_t eq = PyUnicode_FindChar(value, '=', after, end, 1);
        if (eq == -2) {
            return NULL;
        }
        if (eq >= 0 && blank_between(value, kind, data, after, eq)) {
            Py_ssize_t start = 0;
            if (at) {
                start = PyUnicode_FindChar(value, ';', 0, at, -1);
                if (start == -2) {
                    return NULL;
                }
                start += 1;
            }
            if (blank_between(value, kind, data, start, at)) {
                Py_ssize_t a = eq + 1, b = end;
                while (a < b && blank_between(value, kind, data, a, a + 1)) {
                    a++;
                }
                while (b > a && blank_between(value, kind, data, b - 1, b)) {
                    b--;
                }
                return PyUnicode_Substring(value, a, b);
            }
        }
        if (end + 1 > n) {
            break;
        }
        at = PyUnicode_Find(value, name, end + 1, n, 1);
    }
    if (at == -2) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"scan_request", (PyCFunction)(void (*)(void))scan_request, METH_FASTCALL,
     "scan_request(buf, pos, stop) -> (length, method, target, minor, headers) | None"},
    {"scan_response", (PyCFunction)(void (*)(void))scan_response, METH_FASTCALL,
     "scan_response(buf, start, stop) -> (end, kinds, values) | None"},
    {"drop_hop_lines", (PyCFunction)drop_hop_lines, METH_O,
     "drop_hop_lines(raw) -> raw without its Connection, Keep-Alive, Proxy-Connection lines"},
    {"insert_line", (PyCFunction)(void (*)(void))insert_line, METH_FASTCALL,
     "insert_line(raw, line) -> raw with line after its first line"},
    {"span_joined", (PyCFunction)(void (*)(void))span_joined, METH_FASTCALL,
     "span_joined(buf, start, end, tail) -> buf[start:end] + tail, as bytes"},
    {"cookie_in", (PyCFunction)(void (*)(void))cookie_in, METH_FASTCALL,
     "cookie_in(value, name) -> the value of the first pair called name, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lb.wire._headscan",
    .m_doc = "The quick pass of lb's HTTP head parsers, and the removal of hop-by-hop "
             "lines, in C (see lb.wire.http, lb.wire.response_head, lb.wire.http1).",
    .m_size = -1,
    .m_methods = METHODS,
};

PyMODINIT_FUNC PyInit__headscan(void)
{
    init_tables();
    if (KEEP_ALIVE == NULL) {
        KEEP_ALIVE = PyBytes_FromStringAndSize("keep-alive", 10);
        CLOSE = PyBytes_FromStringAndSize("close", 5);
        if (KEEP_ALIVE == NULL || CLOSE == NULL) {
            Py_CLEAR(KEEP_ALIVE);
            Py_CLEAR(CLOSE);
            return NULL;
        }
    }
    return PyModule_Create(&MODULE);
}
