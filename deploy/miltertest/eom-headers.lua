-- At end of message heloguard inserts its RFC 8601 Authentication-Results
-- header and deletes an incoming one that claims its authserv-id.
dofile(libdir .. "/common.lua")

run(function()
	local conn = session()
	rcpt(conn, "user@receiver.example", SMFIR_CONTINUE)
	message(conn, {
		{"From", "x@sender.example"},
		{"Authentication-Results", "mx.receiver.example; spf=pass smtp.helo=forged.example"},
		{"Subject", "headers"},
	})
	if not (mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results") or
	        mt.eom_check(conn, MT_HDRADD, "Authentication-Results")) then
		fail("EOM: no Authentication-Results header added")
	end
	contains("Authentication-Results", mt.getheader(conn, "Authentication-Results", 0), {
		"mx.receiver.example;",
		"iprev=pass",
		"policy.iprev=" .. ip,
		"spf=pass smtp.helo=" .. string.lower(helo),
	})
	if not (mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") or
	        mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results", "")) then
		fail("EOM: the forged Authentication-Results: mx.receiver.example header was not removed")
	end
	mt.disconnect(conn)
end)
