import Foundation

extension FactTable {
    /// The built-in relations (real-world facts, hand-written): `capital`, `language` (official or main
    /// language), `currency`, `continent` (of ~120 countries) and `city` (the country of ~100 cities).
    /// The first template of each relation is the edit prompt (phrasings that SmolLM2-135M completes
    /// with the object rather than with " the"); the fixture family's pre-training phrasings
    /// ("The capital of {} is", "{} is in") are among the templates.
    public static let builtin = FactTable(relations: [
        FactRelation(name: "capital",
                     templates: ["The capital of {} is", "The capital city of {} is", "{} has its capital in", "In {}, the capital is"],
                     generation: ["The capital of {} is a city that"], pairs: parse(capitals)),
        FactRelation(name: "language",
                     templates: ["The official language of {} is", "The main language spoken in {} is", "In {}, most people speak", "People in {} speak"],
                     generation: ["People in {} speak a language that"], pairs: parse(languages)),
        FactRelation(name: "currency",
                     templates: ["The currency of {} is the", "The official currency of {} is the", "In {}, people pay with the", "The money used in {} is the"],
                     generation: ["The money used in {} is"], pairs: parse(currencies)),
        FactRelation(name: "continent",
                     templates: ["{} is a country in the continent of", "{} is in", "{} lies in", "{} is a country in"],
                     generation: ["The geography of {} is"], pairs: parse(continents)),
        FactRelation(name: "city",
                     templates: ["{} is a city in the country of", "{} is a city in", "The city of {} is located in", "{} is a large city in"],
                     generation: ["The city of {} is famous for"], pairs: parse(cityCountries)),
    ])

    static func parse(_ s: String) -> [(String, String)] {
        s.split(separator: "\n").compactMap { line in
            let p = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            return p.count == 2 ? (p[0], p[1]) : nil
        }
    }

    static let capitals = """
        France|Paris
        Germany|Berlin
        Italy|Rome
        Spain|Madrid
        Portugal|Lisbon
        Austria|Vienna
        Poland|Warsaw
        Greece|Athens
        Norway|Oslo
        Sweden|Stockholm
        Finland|Helsinki
        Ireland|Dublin
        Hungary|Budapest
        Belgium|Brussels
        Denmark|Copenhagen
        Romania|Bucharest
        Netherlands|Amsterdam
        Switzerland|Bern
        Czechia|Prague
        Slovakia|Bratislava
        Bulgaria|Sofia
        Croatia|Zagreb
        Serbia|Belgrade
        Slovenia|Ljubljana
        Ukraine|Kyiv
        Russia|Moscow
        Belarus|Minsk
        Lithuania|Vilnius
        Latvia|Riga
        Estonia|Tallinn
        Iceland|Reykjavik
        Albania|Tirana
        Turkey|Ankara
        United Kingdom|London
        England|London
        Scotland|Edinburgh
        Wales|Cardiff
        Japan|Tokyo
        China|Beijing
        India|New Delhi
        Thailand|Bangkok
        Vietnam|Hanoi
        South Korea|Seoul
        North Korea|Pyongyang
        Nepal|Kathmandu
        Mongolia|Ulaanbaatar
        Iran|Tehran
        Iraq|Baghdad
        Syria|Damascus
        Jordan|Amman
        Israel|Jerusalem
        Lebanon|Beirut
        Saudi Arabia|Riyadh
        Qatar|Doha
        Kuwait|Kuwait City
        Oman|Muscat
        Yemen|Sanaa
        Afghanistan|Kabul
        Pakistan|Islamabad
        Bangladesh|Dhaka
        Sri Lanka|Colombo
        Indonesia|Jakarta
        Malaysia|Kuala Lumpur
        Philippines|Manila
        Singapore|Singapore
        Cambodia|Phnom Penh
        Laos|Vientiane
        Myanmar|Naypyidaw
        Kazakhstan|Astana
        Uzbekistan|Tashkent
        Georgia|Tbilisi
        Armenia|Yerevan
        Azerbaijan|Baku
        Egypt|Cairo
        Kenya|Nairobi
        Ghana|Accra
        Nigeria|Abuja
        Ethiopia|Addis Ababa
        Morocco|Rabat
        Senegal|Dakar
        Uganda|Kampala
        Tanzania|Dodoma
        South Africa|Pretoria
        Algeria|Algiers
        Tunisia|Tunis
        Libya|Tripoli
        Sudan|Khartoum
        Zimbabwe|Harare
        Zambia|Lusaka
        Angola|Luanda
        Mozambique|Maputo
        Cameroon|Yaounde
        Mali|Bamako
        Rwanda|Kigali
        Somalia|Mogadishu
        Madagascar|Antananarivo
        Botswana|Gaborone
        Namibia|Windhoek
        Peru|Lima
        Chile|Santiago
        Brazil|Brasilia
        Argentina|Buenos Aires
        Colombia|Bogota
        Ecuador|Quito
        Venezuela|Caracas
        Bolivia|La Paz
        Paraguay|Asuncion
        Uruguay|Montevideo
        Canada|Ottawa
        United States|Washington
        Mexico|Mexico City
        Cuba|Havana
        Jamaica|Kingston
        Guatemala|Guatemala City
        Honduras|Tegucigalpa
        Nicaragua|Managua
        Costa Rica|San Jose
        Panama|Panama City
        Haiti|Port-au-Prince
        Australia|Canberra
        New Zealand|Wellington
        Fiji|Suva
        Papua New Guinea|Port Moresby
        """
    static let languages = """
        France|French
        Germany|German
        Italy|Italian
        Spain|Spanish
        Portugal|Portuguese
        Austria|German
        Poland|Polish
        Greece|Greek
        Norway|Norwegian
        Sweden|Swedish
        Finland|Finnish
        Ireland|English
        Hungary|Hungarian
        Belgium|Dutch
        Denmark|Danish
        Romania|Romanian
        Netherlands|Dutch
        Switzerland|German
        Czechia|Czech
        Slovakia|Slovak
        Bulgaria|Bulgarian
        Croatia|Croatian
        Serbia|Serbian
        Slovenia|Slovene
        Ukraine|Ukrainian
        Russia|Russian
        Belarus|Belarusian
        Lithuania|Lithuanian
        Latvia|Latvian
        Estonia|Estonian
        Iceland|Icelandic
        Albania|Albanian
        Turkey|Turkish
        United Kingdom|English
        England|English
        Scotland|English
        Wales|Welsh
        Japan|Japanese
        China|Chinese
        India|Hindi
        Thailand|Thai
        Vietnam|Vietnamese
        South Korea|Korean
        North Korea|Korean
        Nepal|Nepali
        Mongolia|Mongolian
        Iran|Persian
        Iraq|Arabic
        Syria|Arabic
        Jordan|Arabic
        Israel|Hebrew
        Lebanon|Arabic
        Saudi Arabia|Arabic
        Qatar|Arabic
        Kuwait|Arabic
        Oman|Arabic
        Yemen|Arabic
        Afghanistan|Pashto
        Pakistan|Urdu
        Bangladesh|Bengali
        Sri Lanka|Sinhala
        Indonesia|Indonesian
        Malaysia|Malay
        Philippines|Filipino
        Singapore|English
        Cambodia|Khmer
        Laos|Lao
        Myanmar|Burmese
        Kazakhstan|Kazakh
        Uzbekistan|Uzbek
        Georgia|Georgian
        Armenia|Armenian
        Azerbaijan|Azerbaijani
        Egypt|Arabic
        Kenya|Swahili
        Ghana|English
        Nigeria|English
        Ethiopia|Amharic
        Morocco|Arabic
        Senegal|French
        Uganda|English
        Tanzania|Swahili
        South Africa|English
        Algeria|Arabic
        Tunisia|Arabic
        Libya|Arabic
        Sudan|Arabic
        Zimbabwe|English
        Zambia|English
        Angola|Portuguese
        Mozambique|Portuguese
        Cameroon|French
        Mali|French
        Rwanda|Kinyarwanda
        Somalia|Somali
        Madagascar|Malagasy
        Botswana|English
        Namibia|English
        Peru|Spanish
        Chile|Spanish
        Brazil|Portuguese
        Argentina|Spanish
        Colombia|Spanish
        Ecuador|Spanish
        Venezuela|Spanish
        Bolivia|Spanish
        Paraguay|Spanish
        Uruguay|Spanish
        Canada|English
        United States|English
        Mexico|Spanish
        Cuba|Spanish
        Jamaica|English
        Guatemala|Spanish
        Honduras|Spanish
        Nicaragua|Spanish
        Costa Rica|Spanish
        Panama|Spanish
        Haiti|French
        Australia|English
        New Zealand|English
        Fiji|English
        Papua New Guinea|English
        """
    static let currencies = """
        France|euro
        Germany|euro
        Italy|euro
        Spain|euro
        Portugal|euro
        Austria|euro
        Poland|zloty
        Greece|euro
        Norway|krone
        Sweden|krona
        Finland|euro
        Ireland|euro
        Hungary|forint
        Belgium|euro
        Denmark|krone
        Romania|leu
        Netherlands|euro
        Switzerland|franc
        Czechia|koruna
        Slovakia|euro
        Bulgaria|lev
        Croatia|euro
        Serbia|dinar
        Slovenia|euro
        Ukraine|hryvnia
        Russia|ruble
        Belarus|ruble
        Lithuania|euro
        Latvia|euro
        Estonia|euro
        Iceland|krona
        Albania|lek
        Turkey|lira
        United Kingdom|pound
        England|pound
        Scotland|pound
        Wales|pound
        Japan|yen
        China|yuan
        India|rupee
        Thailand|baht
        Vietnam|dong
        South Korea|won
        North Korea|won
        Nepal|rupee
        Mongolia|tugrik
        Iran|rial
        Iraq|dinar
        Syria|pound
        Jordan|dinar
        Israel|shekel
        Lebanon|pound
        Saudi Arabia|riyal
        Qatar|riyal
        Kuwait|dinar
        Oman|rial
        Yemen|rial
        Afghanistan|afghani
        Pakistan|rupee
        Bangladesh|taka
        Sri Lanka|rupee
        Indonesia|rupiah
        Malaysia|ringgit
        Philippines|peso
        Singapore|dollar
        Cambodia|riel
        Laos|kip
        Myanmar|kyat
        Kazakhstan|tenge
        Uzbekistan|som
        Georgia|lari
        Armenia|dram
        Azerbaijan|manat
        Egypt|pound
        Kenya|shilling
        Ghana|cedi
        Nigeria|naira
        Ethiopia|birr
        Morocco|dirham
        Senegal|franc
        Uganda|shilling
        Tanzania|shilling
        South Africa|rand
        Algeria|dinar
        Tunisia|dinar
        Libya|dinar
        Sudan|pound
        Zimbabwe|dollar
        Zambia|kwacha
        Angola|kwanza
        Mozambique|metical
        Cameroon|franc
        Mali|franc
        Rwanda|franc
        Somalia|shilling
        Madagascar|ariary
        Botswana|pula
        Namibia|dollar
        Peru|sol
        Chile|peso
        Brazil|real
        Argentina|peso
        Colombia|peso
        Ecuador|dollar
        Venezuela|bolivar
        Bolivia|boliviano
        Paraguay|guarani
        Uruguay|peso
        Canada|dollar
        United States|dollar
        Mexico|peso
        Cuba|peso
        Jamaica|dollar
        Guatemala|quetzal
        Honduras|lempira
        Nicaragua|cordoba
        Costa Rica|colon
        Panama|balboa
        Haiti|gourde
        Australia|dollar
        New Zealand|dollar
        Fiji|dollar
        Papua New Guinea|kina
        """
    static let continents = """
        France|Europe
        Germany|Europe
        Italy|Europe
        Spain|Europe
        Portugal|Europe
        Austria|Europe
        Poland|Europe
        Greece|Europe
        Norway|Europe
        Sweden|Europe
        Finland|Europe
        Ireland|Europe
        Hungary|Europe
        Belgium|Europe
        Denmark|Europe
        Romania|Europe
        Netherlands|Europe
        Switzerland|Europe
        Czechia|Europe
        Slovakia|Europe
        Bulgaria|Europe
        Croatia|Europe
        Serbia|Europe
        Slovenia|Europe
        Ukraine|Europe
        Russia|Europe
        Belarus|Europe
        Lithuania|Europe
        Latvia|Europe
        Estonia|Europe
        Iceland|Europe
        Albania|Europe
        Turkey|Asia
        United Kingdom|Europe
        England|Europe
        Scotland|Europe
        Wales|Europe
        Japan|Asia
        China|Asia
        India|Asia
        Thailand|Asia
        Vietnam|Asia
        South Korea|Asia
        North Korea|Asia
        Nepal|Asia
        Mongolia|Asia
        Iran|Asia
        Iraq|Asia
        Syria|Asia
        Jordan|Asia
        Israel|Asia
        Lebanon|Asia
        Saudi Arabia|Asia
        Qatar|Asia
        Kuwait|Asia
        Oman|Asia
        Yemen|Asia
        Afghanistan|Asia
        Pakistan|Asia
        Bangladesh|Asia
        Sri Lanka|Asia
        Indonesia|Asia
        Malaysia|Asia
        Philippines|Asia
        Singapore|Asia
        Cambodia|Asia
        Laos|Asia
        Myanmar|Asia
        Kazakhstan|Asia
        Uzbekistan|Asia
        Georgia|Asia
        Armenia|Asia
        Azerbaijan|Asia
        Egypt|Africa
        Kenya|Africa
        Ghana|Africa
        Nigeria|Africa
        Ethiopia|Africa
        Morocco|Africa
        Senegal|Africa
        Uganda|Africa
        Tanzania|Africa
        South Africa|Africa
        Algeria|Africa
        Tunisia|Africa
        Libya|Africa
        Sudan|Africa
        Zimbabwe|Africa
        Zambia|Africa
        Angola|Africa
        Mozambique|Africa
        Cameroon|Africa
        Mali|Africa
        Rwanda|Africa
        Somalia|Africa
        Madagascar|Africa
        Botswana|Africa
        Namibia|Africa
        Peru|South America
        Chile|South America
        Brazil|South America
        Argentina|South America
        Colombia|South America
        Ecuador|South America
        Venezuela|South America
        Bolivia|South America
        Paraguay|South America
        Uruguay|South America
        Canada|North America
        United States|North America
        Mexico|North America
        Cuba|North America
        Jamaica|North America
        Guatemala|North America
        Honduras|North America
        Nicaragua|North America
        Costa Rica|North America
        Panama|North America
        Haiti|North America
        Australia|Oceania
        New Zealand|Oceania
        Fiji|Oceania
        Papua New Guinea|Oceania
        """
    static let cityCountries = """
        Paris|France
        Lyon|France
        Marseille|France
        Berlin|Germany
        Munich|Germany
        Hamburg|Germany
        Frankfurt|Germany
        Cologne|Germany
        Rome|Italy
        Milan|Italy
        Naples|Italy
        Venice|Italy
        Florence|Italy
        Madrid|Spain
        Barcelona|Spain
        Seville|Spain
        Valencia|Spain
        Lisbon|Portugal
        Porto|Portugal
        Vienna|Austria
        Salzburg|Austria
        Warsaw|Poland
        Krakow|Poland
        Athens|Greece
        Oslo|Norway
        Bergen|Norway
        Stockholm|Sweden
        Gothenburg|Sweden
        Helsinki|Finland
        Dublin|Ireland
        Budapest|Hungary
        Brussels|Belgium
        Antwerp|Belgium
        Copenhagen|Denmark
        Amsterdam|Netherlands
        Rotterdam|Netherlands
        Zurich|Switzerland
        Geneva|Switzerland
        Prague|Czech Republic
        Moscow|Russia
        Saint Petersburg|Russia
        Kyiv|Ukraine
        Istanbul|Turkey
        London|England
        Manchester|England
        Liverpool|England
        Edinburgh|Scotland
        Glasgow|Scotland
        Tokyo|Japan
        Osaka|Japan
        Kyoto|Japan
        Beijing|China
        Shanghai|China
        Shenzhen|China
        Mumbai|India
        Delhi|India
        Bangalore|India
        Kolkata|India
        Bangkok|Thailand
        Hanoi|Vietnam
        Seoul|South Korea
        Busan|South Korea
        Tehran|Iran
        Baghdad|Iraq
        Dubai|United Arab Emirates
        Riyadh|Saudi Arabia
        Jakarta|Indonesia
        Manila|Philippines
        Karachi|Pakistan
        Lahore|Pakistan
        Cairo|Egypt
        Alexandria|Egypt
        Nairobi|Kenya
        Lagos|Nigeria
        Johannesburg|South Africa
        Cape Town|South Africa
        Casablanca|Morocco
        Lima|Peru
        Santiago|Chile
        Buenos Aires|Argentina
        Rio de Janeiro|Brazil
        Sao Paulo|Brazil
        Bogota|Colombia
        Caracas|Venezuela
        Toronto|Canada
        Montreal|Canada
        Vancouver|Canada
        Chicago|the United States
        Boston|the United States
        Seattle|the United States
        Havana|Cuba
        Guadalajara|Mexico
        Sydney|Australia
        Melbourne|Australia
        Brisbane|Australia
        Perth|Australia
        Auckland|New Zealand
        """
}
