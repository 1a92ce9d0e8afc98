-- Mail to postmaster@ is never refused (RFC 5321 4.5.1), even from a client
-- that is refused for every other recipient; the message says what would
-- have happened in X-Heloguard.
dofile(libdir .. "/common.lua")

run(function()
	local conn = session()
	rcpt(conn, "postmaster@receiver.example", SMFIR_CONTINUE)
	message(conn, {{"From", "x@sender.example"}, {"Subject", "to postmaster"}})
	if not mt.eom_check(conn, MT_HDRADD, "X-Heloguard") then
		fail("EOM: no X-Heloguard header added")
	end
	contains("X-Heloguard", mt.getheader(conn, "X-Heloguard", 0), {"reject", "postmaster"})
	mt.disconnect(conn)
end)
