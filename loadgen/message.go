package loadgen

import (
	"slices"
	"strconv"
	"strings"
)

// Header is one header field as Postfix passes it to a milter: the name, and
// the value with the space after the colon removed (unless the milter asked
// for HDR_LEADSPC) and continuation lines joined with "\n".
type Header struct {
	Name, Value string
}

// headerTemplate is a field of a realistic message from a big sender (Office
// 365 relaying for a domain that signs with DKIM), with its place in the
// message (order) and how soon it is picked for a message of n fields (rank).
type headerTemplate struct {
	rank, order int
	Header
}

var headerTemplates = []headerTemplate{
	{1, 40, Header{"From", `"Contoso Billing" <billing@contoso.example>`}},
	{2, 41, Header{"To", `"Alice Example" <alice@receiver.example>`}},
	{3, 42, Header{"Subject", "Your invoice INV-2026-118734 for November is ready"}},
	{4, 44, Header{"Date", "Tue, 1 Dec 2026 09:14:05 +0000"}},
	{5, 45, Header{"Message-ID", "<BL0PR02MB48193C1F0A2B4D5E6F7A8B9CC0D1E2F3A4B5@BL0PR02MB4819.namprd02.prod.outlook.com>"}},
	{6, 52, Header{"MIME-Version", "1.0"}},
	{7, 50, Header{"Content-Type", `multipart/alternative;` + "\n\t" + `boundary="_000_BL0PR02MB48193C1F0A2B4D5E6F7A8B9CBL0PR02MB4819namp_"`}},
	{8, 12, Header{"Received", "from BL0PR02MB4819.namprd02.prod.outlook.com (2603:10b6:208:37::27) by\n\tBL2PR02MB2097.namprd02.prod.outlook.com (2603:10b6:208:b0::19) with\n\tMicrosoft SMTP Server (version=TLS1_2,\n\tcipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7409.41; Tue, 1 Dec 2026\n\t09:14:06 +0000"}},
	{9, 30, Header{"DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=contoso.example;\n\ts=selector1; h=From:Date:Subject:Message-ID:Content-Type:MIME-Version:X-MS-Exchange-SenderADCheck;\n\tbh=6ciyB1mDOAbVOLqwdKqYNHZ1SaeXgNu8Jw6gJ8R0Bfk=;\n\tb=Qm9vZ3VzU2lnbmF0dXJlRm9yQmVuY2htYXJraW5nT25seVRoaXNJc05vdEFSZWFsU2lnbmF0dXJl\n\tT2ZBbnlLZXlKdXN0QmFzZTY0VGV4dE9mVGhlUmlnaHRMZW5ndGhGb3JBMjA0OEJpdFJTQUtleQ==\n\tQm9vZ3VzU2lnbmF0dXJlRm9yQmVuY2htYXJraW5nT25seVRoaXNJc05vdEFSZWFsU2lnbmF0dXJl\n\tT2ZBbnlLZXlKdXN0QmFzZTY0VGV4dE9mVGhlUmlnaHRMZW5ndGhGb3JBMjA0OEJpdFJTQUtleQ=="}},
	{10, 11, Header{"Received", "from BL0PR02MB4819.namprd02.prod.outlook.com\n\t([fe80::5d1c:7a2b:9e3f:1c2d]) by BL0PR02MB4819.namprd02.prod.outlook.com\n\t([fe80::5d1c:7a2b:9e3f:1c2d%4]) with mapi id 15.20.7409.040; Tue, 1 Dec 2026\n\t09:14:05 +0000"}},
	{11, 51, Header{"Content-Transfer-Encoding", "quoted-printable"}},
	{12, 25, Header{"Authentication-Results", "spf=pass (sender IP is 40.107.92.51)\n\tsmtp.mailfrom=contoso.example; dkim=pass (signature was verified)\n\theader.d=contoso.example;dmarc=pass action=none\n\theader.from=contoso.example;compauth=pass reason=100"}},
	{13, 20, Header{"ARC-Seal", "i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none;\n\tb=U2VhbFNpZ25hdHVyZUZvckJlbmNobWFya2luZ09ubHlUaGlzSXNOb3RBUmVhbFNpZ25hdHVyZU9m\n\tQW55S2V5SnVzdEJhc2U2NFRleHRPZlRoZVJpZ2h0TGVuZ3RoRm9yQTIwNDhCaXRSU0FLZXlYWFhY\n\tU2VhbFNpZ25hdHVyZUZvckJlbmNobWFya2luZ09ubHlUaGlzSXNOb3RBUmVhbFNpZ25hdHVyZU9m"}},
	{14, 21, Header{"ARC-Message-Signature", "i=1; a=rsa-sha256; c=relaxed/relaxed; d=microsoft.com;\n\ts=arcselector9901;\n\th=From:Date:Subject:Message-ID:Content-Type:MIME-Version:X-MS-Exchange-AntiSpam-MessageData-ChunkCount:X-MS-Exchange-AntiSpam-MessageData-0;\n\tbh=6ciyB1mDOAbVOLqwdKqYNHZ1SaeXgNu8Jw6gJ8R0Bfk=;\n\tb=TWVzc2FnZVNpZ25hdHVyZUZvckJlbmNobWFya2luZ09ubHlUaGlzSXNOb3RBUmVhbFNpZ25hdHVy\n\tZU9mQW55S2V5SnVzdEJhc2U2NFRleHRPZlRoZVJpZ2h0TGVuZ3RoRm9yQTIwNDhCaXRSU0FLZXlY\n\tTWVzc2FnZVNpZ25hdHVyZUZvckJlbmNobWFya2luZ09ubHlUaGlzSXNOb3RBUmVhbFNpZ25hdHVy"}},
	{15, 22, Header{"ARC-Authentication-Results", "i=1; mx.microsoft.com 1; spf=pass\n\tsmtp.mailfrom=contoso.example; dmarc=pass action=none\n\theader.from=contoso.example; dkim=pass header.d=contoso.example; arc=none"}},
	{16, 10, Header{"Received", "from CH2PR02CA0012.namprd02.prod.outlook.com (2603:10b6:610:4e::22) by\n\tBL0PR02MB4819.namprd02.prod.outlook.com (2603:10b6:208:37::27) with Microsoft\n\tSMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\n\t15.20.7409.41; Tue, 1 Dec 2026 09:14:04 +0000"}},
	{17, 48, Header{"List-Unsubscribe", "<https://billing.contoso.example/unsubscribe?u=8f3a9c2e41&l=invoices>,\n\t<mailto:unsubscribe+8f3a9c2e41@billing.contoso.example>"}},
	{18, 60, Header{"X-Forefront-Antispam-Report", "CIP:255.255.255.255;CTRY:;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:BL0PR02MB4819.namprd02.prod.outlook.com;PTR:;CAT:NONE;SFS:(13230031)(366004)(136003)(396003)(39860400002)(346002)(376002)(230922051799003)(1800799009)(186009)(451199024)(64100799003)(38070700005)(33656002)(86362001)(122000001)(38100700002)(8676002)(8936002)(4326008)(5660300002)(52536014)(2906002)(41300700001)(66946007)(76116006)(66556008)(66476007)(66446008)(64756008)(316002)(110136005)(478600001)(71200400001)(9686003)(6506007)(7696005)(26005)(55016003);DIR:OUT;SFP:1102;"}},
	{19, 61, Header{"X-MS-Exchange-CrossTenant-OriginalArrivalTime", "01 Dec 2026 09:14:05.6624 (UTC)"}},
	{20, 43, Header{"Thread-Topic", "Your invoice INV-2026-118734 for November is ready"}},
	{21, 53, Header{"Content-Language", "en-US"}},
	{22, 54, Header{"X-MS-Has-Attach", "yes"}},
	{23, 55, Header{"X-Mailer", "Microsoft Outlook 16.0"}},
}

// Headers is a realistic header of n fields: the first n fields by rank
// (From, To, Subject, Date, Message-ID, MIME-Version, Content-Type, Received,
// DKIM-Signature, ...) in the order a message has them; beyond the 23 fields
// of the template, more Received fields (more hops).
func Headers(n int) []Header {
	picked := slices.Clone(headerTemplates)
	slices.SortFunc(picked, func(a, b headerTemplate) int { return a.rank - b.rank })
	picked = picked[:min(n, len(picked))]
	slices.SortStableFunc(picked, func(a, b headerTemplate) int { return a.order - b.order })
	out := make([]Header, 0, max(n, 0))
	for i := len(headerTemplates); i < n; i++ { // the oldest hop is the lowest
		hop := strconv.Itoa(n - i)
		out = append(out, Header{"Received", "from relay" + hop + ".contoso.example (relay" + hop + ".contoso.example [203.0.113." + hop + "])\n\tby CH2PR02CA0012.namprd02.prod.outlook.com with ESMTPS id 4Xk9Qp2fTz3wZ" + hop + ";\n\tTue, 1 Dec 2026 09:14:03 +0000"})
	}
	for _, t := range picked {
		out = append(out, t.Header)
	}
	return out
}

// body is the message body Postfix sends in one chunk: text lines ending in
// CRLF, about 1.5 KB.
var body = strings.Repeat("Dear customer,\r\n\r\nyour invoice INV-2026-118734 of EUR 1,284.50 for November is ready.\r\nIt is attached as a PDF and available in the billing portal.\r\n\r\n", 8) +
	"Kind regards,\r\nContoso Billing\r\n"
