-- Shared by heloguard's miltertest scripts (see miltertest_test.go).
-- Loaded with dofile(libdir .. "/common.lua"). Globals set with -D:
--   port   heloguard's TCP port on 127.0.0.1
--   ip     the client address the "MTA" reports
--   helo   the HELO name the client sent
--   libdir this directory
-- heloguard is configured with reject_at: rcpt, so CONNECT, HELO and MAIL are
-- always continued and a refusal comes at RCPT.

-- run calls f and, if it raises an error (fail, or a miltertest call that
-- throws), prints the reason before failing: miltertest itself does not show
-- a Lua error's message, it only exits non-zero.
function run(f)
	local good, err = pcall(f)
	if not good then
		mt.echo("FAIL: " .. tostring(err))
		error(err)
	end
end

function fail(msg)
	error(msg, 2)
end

if port == nil or ip == nil or helo == nil then
	mt.echo("FAIL: run with -D port=N -D ip=A -D helo=NAME -D libdir=DIR")
	error("missing -D definitions")
end

local names = {}
names[SMFIR_CONTINUE] = "SMFIR_CONTINUE"
names[SMFIR_ACCEPT] = "SMFIR_ACCEPT"
names[SMFIR_REJECT] = "SMFIR_REJECT"
names[SMFIR_TEMPFAIL] = "SMFIR_TEMPFAIL"
names[SMFIR_DISCARD] = "SMFIR_DISCARD"
names[SMFIR_REPLYCODE] = "SMFIR_REPLYCODE"

local function name(r)
	if r == nil then return "nothing" end
	return names[r] or ("'" .. string.char(r) .. "'")
end

-- ok fails the script when a miltertest call returned an error string.
function ok(err, step)
	if err ~= nil then
		fail(step .. " failed: " .. tostring(err))
	end
end

-- expect fails the script unless the last reply is want.
function expect(conn, step, want)
	local r = mt.getreply(conn)
	if r ~= want then
		fail(step .. ": heloguard answered " .. name(r) .. ", want " .. name(want) ..
			" (client " .. ip .. ", HELO " .. helo .. ")")
	end
	mt.echo(step .. ": " .. name(r))
end

-- session connects and plays CONNECT, HELO and MAIL the way Postfix does,
-- with the macros Postfix sends (miltertest sends none by itself).
function session()
	mt.set_timeout(20)
	local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 40, 0.25)
	if conn == nil then
		fail("cannot connect to heloguard at 127.0.0.1:" .. port)
	end
	mt.macro(conn, SMFIC_CONNECT, "j", "mx.receiver.example", "{daemon_name}", "mx.receiver.example",
		"{client_addr}", ip, "{client_name}", "[" .. ip .. "]")
	ok(mt.conninfo(conn, "[" .. ip .. "]", ip), "CONNECT")
	expect(conn, "CONNECT", SMFIR_CONTINUE)
	ok(mt.helo(conn, helo), "HELO")
	expect(conn, "HELO", SMFIR_CONTINUE)
	mt.macro(conn, SMFIC_MAIL, "i", "4XE2E1", "{mail_addr}", "x@sender.example")
	ok(mt.mailfrom(conn, "<x@sender.example>"), "MAIL")
	expect(conn, "MAIL", SMFIR_CONTINUE)
	return conn
end

-- rcpt sends one recipient and checks the reply.
function rcpt(conn, addr, want)
	mt.macro(conn, SMFIC_RCPT, "i", "4XE2E1", "{rcpt_addr}", addr)
	ok(mt.rcptto(conn, "<" .. addr .. ">"), "RCPT " .. addr)
	expect(conn, "RCPT " .. addr, want)
end

-- message sends headers (a list of {name, value}) and end of message. No DATA,
-- end-of-header or body step: heloguard negotiates them away (SMFIP_NODATA,
-- SMFIP_NOEOH, SMFIP_NOBODY), and asks for header fields without replies
-- (SMFIP_NR_HDR), as Postfix sees. End of message is answered accept.
function message(conn, headers)
	for _, opt in ipairs({{SMFIP_NODATA, "SMFIP_NODATA"}, {SMFIP_NOEOH, "SMFIP_NOEOH"},
			{SMFIP_NOBODY, "SMFIP_NOBODY"}, {SMFIP_NR_HDR, "SMFIP_NR_HDR"}}) do
		if not mt.test_option(conn, opt[1]) then
			fail("negotiation: heloguard did not ask for " .. opt[2])
		end
	end
	for _, h in ipairs(headers) do
		ok(mt.header(conn, h[1], h[2]), "header " .. h[1])
	end
	ok(mt.eom(conn), "EOM")
	expect(conn, "EOM", SMFIR_ACCEPT)
end

-- contains fails unless s holds every string in list (plain find).
function contains(what, s, list)
	if s == nil then
		fail(what .. ": missing")
	end
	for _, want in ipairs(list) do
		if string.find(s, want, 1, true) == nil then
			fail(what .. " = " .. s .. ": lacks " .. want)
		end
	end
end
