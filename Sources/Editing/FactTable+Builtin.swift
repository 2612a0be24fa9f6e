import Foundation

extension FactTable {
    /// The built-in relations (real-world facts, hand-written): `capital`, `language` (official or main
    /// language), `currency`, `continent` (of ~120 countries), `city` (the country of ~200 cities),
    /// `landmark` (the city of ~95 buildings and sights), `company` (the home country of ~70
    /// companies), `developer` (the maker of ~40 products), `author` (of ~40 books) and `element`
    /// (the chemical symbol of ~50 elements).
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
        FactRelation(name: "company",
                     templates: ["{} is a multinational company based in the country of", "{} is a company from", "{} is a company based in", "{} has its headquarters in"],
                     generation: ["The company {} is known for"], pairs: parse(companies)),
        FactRelation(name: "landmark",
                     templates: ["{} is in the city of", "{} is located in the city of", "{} can be found in the city of", "Tourists visit {} in"],
                     generation: ["{} is a place where"], pairs: parse(landmarks)),
        FactRelation(name: "developer",
                     templates: ["{} is a product made by", "{} is made by the company", "{} was developed by", "The maker of {} is"],
                     generation: ["{} is a product that"], pairs: parse(products)),
        FactRelation(name: "author",
                     templates: ["The book {} was written by", "{} was written by", "The author of {} is", "{} is a book by"],
                     generation: ["{} is a book that"], pairs: parse(books)),
        FactRelation(name: "element",
                     templates: ["The chemical symbol for {} is", "The symbol of the element {} is", "{} has the chemical symbol", "In chemistry, {} is written as"],
                     generation: ["{} is an element that"], pairs: parse(elements)),
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
        Nice|France
        Toulouse|France
        Bordeaux|France
        Strasbourg|France
        Stuttgart|Germany
        Dresden|Germany
        Leipzig|Germany
        Dusseldorf|Germany
        Turin|Italy
        Genoa|Italy
        Bologna|Italy
        Palermo|Italy
        Bilbao|Spain
        Malaga|Spain
        Granada|Spain
        Zaragoza|Spain
        Graz|Austria
        Innsbruck|Austria
        Gdansk|Poland
        Wroclaw|Poland
        Thessaloniki|Greece
        Uppsala|Sweden
        Malmo|Sweden
        Aarhus|Denmark
        Cork|Ireland
        Bruges|Belgium
        Ghent|Belgium
        Utrecht|Netherlands
        The Hague|Netherlands
        Basel|Switzerland
        Lausanne|Switzerland
        Brno|Czech Republic
        Novosibirsk|Russia
        Kazan|Russia
        Odessa|Ukraine
        Lviv|Ukraine
        Ankara|Turkey
        Izmir|Turkey
        Birmingham|England
        Leeds|England
        Bristol|England
        Oxford|England
        Cambridge|England
        Aberdeen|Scotland
        Cardiff|Wales
        Nagoya|Japan
        Hiroshima|Japan
        Yokohama|Japan
        Sapporo|Japan
        Guangzhou|China
        Wuhan|China
        Chengdu|China
        Nanjing|China
        Chennai|India
        Hyderabad|India
        Pune|India
        Jaipur|India
        Ho Chi Minh City|Vietnam
        Kuala Lumpur|Malaysia
        Islamabad|Pakistan
        Dhaka|Bangladesh
        Kathmandu|Nepal
        Colombo|Sri Lanka
        Tel Aviv|Israel
        Beirut|Lebanon
        Damascus|Syria
        Amman|Jordan
        Doha|Qatar
        Mecca|Saudi Arabia
        Jeddah|Saudi Arabia
        Isfahan|Iran
        Kabul|Afghanistan
        Addis Ababa|Ethiopia
        Accra|Ghana
        Dakar|Senegal
        Tunis|Tunisia
        Algiers|Algeria
        Marrakesh|Morocco
        Durban|South Africa
        Khartoum|Sudan
        Quito|Ecuador
        La Paz|Bolivia
        Montevideo|Uruguay
        Medellin|Colombia
        Brasilia|Brazil
        Monterrey|Mexico
        Cancun|Mexico
        Mexico City|Mexico
        Calgary|Canada
        Ottawa|Canada
        Houston|the United States
        Dallas|the United States
        Miami|the United States
        Denver|the United States
        Atlanta|the United States
        Philadelphia|the United States
        San Diego|the United States
        Detroit|the United States
        Las Vegas|the United States
        Adelaide|Australia
        Canberra|Australia
        Wellington|New Zealand
        Christchurch|New Zealand
        """

    static let companies = """
        Toyota|Japan
        Honda|Japan
        Nissan|Japan
        Sony|Japan
        Panasonic|Japan
        Nintendo|Japan
        Mitsubishi|Japan
        Toshiba|Japan
        Canon|Japan
        Yamaha|Japan
        Suzuki|Japan
        Mazda|Japan
        Samsung|South Korea
        Hyundai|South Korea
        Kia|South Korea
        Volkswagen|Germany
        BMW|Germany
        Mercedes-Benz|Germany
        Siemens|Germany
        Bosch|Germany
        Adidas|Germany
        Porsche|Germany
        Audi|Germany
        Lufthansa|Germany
        Bayer|Germany
        SAP|Germany
        Fiat|Italy
        Ferrari|Italy
        Lamborghini|Italy
        Gucci|Italy
        Prada|Italy
        Renault|France
        Peugeot|France
        Michelin|France
        Airbus|France
        Chanel|France
        Danone|France
        Volvo|Sweden
        IKEA|Sweden
        Ericsson|Sweden
        Spotify|Sweden
        Nokia|Finland
        Nestle|Switzerland
        Rolex|Switzerland
        Novartis|Switzerland
        Philips|Netherlands
        Heineken|Netherlands
        Shell|Netherlands
        Lego|Denmark
        Carlsberg|Denmark
        Huawei|China
        Alibaba|China
        Tencent|China
        Lenovo|China
        Xiaomi|China
        Tata|India
        Infosys|India
        Unilever|England
        Rolls-Royce|England
        Jaguar|England
        Tesco|England
        Zara|Spain
        Seat|Spain
        Skoda|Czech Republic
        Embraer|Brazil
        Petrobras|Brazil
        Gazprom|Russia
        """

    static let landmarks = """
        The Eiffel Tower|Paris
        The Louvre|Paris
        Notre-Dame Cathedral|Paris
        The Arc de Triomphe|Paris
        The Colosseum|Rome
        The Pantheon|Rome
        The Trevi Fountain|Rome
        The Vatican|Rome
        Big Ben|London
        The Tower of London|London
        Buckingham Palace|London
        Westminster Abbey|London
        The London Eye|London
        The Brandenburg Gate|Berlin
        The Reichstag|Berlin
        The Sagrada Familia|Barcelona
        The Prado Museum|Madrid
        The Acropolis|Athens
        The Parthenon|Athens
        The Kremlin|Moscow
        Red Square|Moscow
        The Hermitage Museum|Saint Petersburg
        The Hagia Sophia|Istanbul
        The Blue Mosque|Istanbul
        The Forbidden City|Beijing
        Tiananmen Square|Beijing
        The Bund|Shanghai
        Tokyo Tower|Tokyo
        The Taj Mahal|Agra
        The Gateway of India|Mumbai
        The Statue of Liberty|New York
        Central Park|New York
        The Empire State Building|New York
        Times Square|New York
        The Golden Gate Bridge|San Francisco
        The White House|Washington
        The Lincoln Memorial|Washington
        The Space Needle|Seattle
        Hollywood|Los Angeles
        The Sydney Opera House|Sydney
        The CN Tower|Toronto
        Christ the Redeemer|Rio de Janeiro
        The Rijksmuseum|Amsterdam
        The Little Mermaid statue|Copenhagen
        The Leaning Tower|Pisa
        St. Mark's Basilica|Venice
        The Uffizi Gallery|Florence
        Charles Bridge|Prague
        Edinburgh Castle|Edinburgh
        The Burj Khalifa|Dubai
        The Alhambra|Granada
        La Scala|Milan
        The Spanish Steps|Rome
        Checkpoint Charlie|Berlin
        The Atomium|Brussels
        Manneken Pis|Brussels
        Tivoli Gardens|Copenhagen
        Prague Castle|Prague
        The Sydney Harbour Bridge|Sydney
        Alcatraz|San Francisco
        The Hollywood Sign|Los Angeles
        The Willis Tower|Chicago
        The Gateway Arch|St. Louis
        The Petronas Towers|Kuala Lumpur
        Marina Bay Sands|Singapore
        The Grand Palace|Bangkok
        Shibuya Crossing|Tokyo
        Wall Street|New York
        Broadway|New York
        The Brooklyn Bridge|New York
        The Metropolitan Museum of Art|New York
        The Smithsonian|Washington
        The Capitol|Washington
        Tower Bridge|London
        Trafalgar Square|London
        The British Museum|London
        Hyde Park|London
        The Champs-Elysees|Paris
        Montmartre|Paris
        The Palace of Versailles|Versailles
        Cologne Cathedral|Cologne
        The Rialto Bridge|Venice
        The Grand Canal|Venice
        Park Guell|Barcelona
        La Rambla|Barcelona
        The Bolshoi Theatre|Moscow
        The Topkapi Palace|Istanbul
        The Temple of Heaven|Beijing
        The Oriental Pearl Tower|Shanghai
        Copacabana|Rio de Janeiro
        Sugarloaf Mountain|Rio de Janeiro
        The Vatican Museums|Rome
        The Berlin Wall|Berlin
        The Golden Temple|Amritsar
        The Alamo|San Antonio
        """

    static let products = """
        The iPhone|Apple
        The iPad|Apple
        The MacBook|Apple
        macOS|Apple
        Safari|Apple
        Windows|Microsoft
        Microsoft Word|Microsoft
        Excel|Microsoft
        The Xbox|Microsoft
        Outlook|Microsoft
        Bing|Microsoft
        Android|Google
        Gmail|Google
        Google Chrome|Google
        YouTube|Google
        The Pixel|Google
        The PlayStation|Sony
        The Walkman|Sony
        The Galaxy|Samsung
        The Switch|Nintendo
        The Game Boy|Nintendo
        Mario|Nintendo
        The Model S|Tesla
        The Model 3|Tesla
        The Kindle|Amazon
        Alexa|Amazon
        Instagram|Meta
        WhatsApp|Meta
        Photoshop|Adobe
        Acrobat|Adobe
        The Corolla|Toyota
        The Prius|Toyota
        The Civic|Honda
        The Golf|Volkswagen
        The Beetle|Volkswagen
        The Mustang|Ford
        The F-150|Ford
        The Boeing 747|Boeing
        The ThinkPad|Lenovo
        Java|Oracle
        GeForce|Nvidia
        Firefox|Mozilla
        """

    static let books = """
        Hamlet|William Shakespeare
        Macbeth|William Shakespeare
        Romeo and Juliet|William Shakespeare
        Othello|William Shakespeare
        King Lear|William Shakespeare
        Pride and Prejudice|Jane Austen
        Emma|Jane Austen
        Sense and Sensibility|Jane Austen
        Oliver Twist|Charles Dickens
        Great Expectations|Charles Dickens
        A Christmas Carol|Charles Dickens
        David Copperfield|Charles Dickens
        War and Peace|Leo Tolstoy
        Anna Karenina|Leo Tolstoy
        Crime and Punishment|Fyodor Dostoevsky
        The Brothers Karamazov|Fyodor Dostoevsky
        Nineteen Eighty-Four|George Orwell
        Animal Farm|George Orwell
        The Great Gatsby|F. Scott Fitzgerald
        Moby-Dick|Herman Melville
        The Old Man and the Sea|Ernest Hemingway
        A Farewell to Arms|Ernest Hemingway
        Don Quixote|Miguel de Cervantes
        Les Miserables|Victor Hugo
        The Hunchback of Notre-Dame|Victor Hugo
        The Odyssey|Homer
        The Iliad|Homer
        Frankenstein|Mary Shelley
        Dracula|Bram Stoker
        The Hobbit|J. R. R. Tolkien
        The Lord of the Rings|J. R. R. Tolkien
        Harry Potter|J. K. Rowling
        The Adventures of Tom Sawyer|Mark Twain
        Adventures of Huckleberry Finn|Mark Twain
        To Kill a Mockingbird|Harper Lee
        The Catcher in the Rye|J. D. Salinger
        Brave New World|Aldous Huxley
        Faust|Johann Wolfgang von Goethe
        The Divine Comedy|Dante Alighieri
        The Origin of Species|Charles Darwin
        """

    static let elements = """
        hydrogen|H
        helium|He
        carbon|C
        nitrogen|N
        oxygen|O
        sodium|Na
        magnesium|Mg
        aluminium|Al
        silicon|Si
        phosphorus|P
        sulfur|S
        chlorine|Cl
        potassium|K
        calcium|Ca
        iron|Fe
        copper|Cu
        zinc|Zn
        silver|Ag
        tin|Sn
        gold|Au
        mercury|Hg
        lead|Pb
        uranium|U
        neon|Ne
        lithium|Li
        argon|Ar
        nickel|Ni
        cobalt|Co
        platinum|Pt
        iodine|I
        fluorine|F
        boron|B
        manganese|Mn
        chromium|Cr
        titanium|Ti
        barium|Ba
        bromine|Br
        krypton|Kr
        xenon|Xe
        radium|Ra
        plutonium|Pu
        tungsten|W
        beryllium|Be
        arsenic|As
        selenium|Se
        strontium|Sr
        radon|Rn
        iridium|Ir
        bismuth|Bi
        cesium|Cs
        antimony|Sb
        """
}
