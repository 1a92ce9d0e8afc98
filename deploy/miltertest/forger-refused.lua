-- A forger claiming an Office 365 HELO from a rented server is refused at
-- RCPT with a reply of its own (SMFIR_REPLYCODE, 550 5.7.23 ...; miltertest
-- does not show the text to Lua, the Go test reads it from the decision log).
dofile(libdir .. "/common.lua")

run(function()
	local conn = session()
	rcpt(conn, "user@receiver.example", SMFIR_REPLYCODE)
	mt.disconnect(conn)
end)
