-- An Office 365 sender (generic HELO, FCrDNS, SPF of the HELO passes) is let
-- through: RCPT is continued (SMFIR_CONTINUE).
dofile(libdir .. "/common.lua")

run(function()
	local conn = session()
	rcpt(conn, "user@receiver.example", SMFIR_CONTINUE)
	message(conn, {{"From", "x@sender.example"}, {"Subject", "office365"}})
	mt.disconnect(conn)
end)
